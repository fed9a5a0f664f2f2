# Die Texte der eigenen Seiten des Sidecars, auf Deutsch.

## Auf vielen Seiten

request-id = Anfrage-Kennung: { $id }
go-to-shop = Zum Shop
back-to-shop = Zurück zum Shop
sign-in-again = Erneut anmelden
support = Brauchen Sie Hilfe? Wenden Sie sich an { $contact }.
details = Einzelheiten: { $detail }
skip-to-content = Zum Inhalt springen

## Fehler der Anfrage oder des Shops

bad-address-title = Ungültige Anfrage
bad-address-text = Die Adresse dieser Anfrage ist nicht gültig.
shop-timeout-title = Der Shop antwortet nicht
shop-timeout-text = Der Shop hat nicht rechtzeitig geantwortet. Bitte versuchen Sie es gleich noch einmal.
shop-unreachable-title = Der Shop ist nicht erreichbar
shop-unreachable-text = Der Shop konnte nicht erreicht werden. Bitte versuchen Sie es gleich noch einmal.
failure-title = Etwas ist schiefgegangen
failure-text = Die Anfrage konnte nicht ausgeführt werden. Bitte versuchen Sie es noch einmal.
not-found-title = Nicht gefunden
not-found-text = Diese Adresse gehört zum Anmeldedienst und existiert nicht.
too-many-title = Zu viele Anmeldeversuche
too-many-text = Aus Ihrem Netzwerk kamen zu viele Anmeldeversuche. Bitte warten Sie eine Minute und versuchen Sie es dann noch einmal.
session-expired-title = Ihre Sitzung ist abgelaufen
form-too-large-text = Bitte melden Sie sich erneut an und senden Sie das Formular noch einmal; es war zu groß, um es aufzubewahren.

## Der Identitätsanbieter ist nicht erreichbar

idp-unreachable-title = Der Identitätsanbieter ist nicht erreichbar
idp-unreachable-text = Ihre Anmeldung ist abgelaufen, und der Identitätsanbieter Ihrer Organisation ist nicht erreichbar, um sie zu erneuern. Bitte melden Sie sich gleich noch einmal an.
idp-down-title = Der Anmeldedienst ist nicht verfügbar
idp-down-text = { $idp } ist im Moment nicht erreichbar, deshalb wurden Sie nicht dorthin weitergeleitet.
idp-down-others = Sie können sich auf anderem Weg anmelden:
idp-down-retry = { $idp } erneut versuchen

## Anmelden

sign-in-title = Anmelden
organization-label = Organisation
organization-hint = Der Name des Unternehmens oder der Organisation, für die Sie arbeiten.
continue = Weiter
unknown-organization = Diese Organisation kennen wir nicht. Bitte prüfen Sie den Namen und versuchen Sie es noch einmal.
sign-in-to = Bei { $org } anmelden
choose-idp = Wählen Sie, wie Sie sich anmelden möchten:
choose-one-option = Bitte wählen Sie eine dieser Anmeldemöglichkeiten.
not-this-organization = Nicht { $org }? Andere Organisation wählen
no-option-title = Anmeldung nicht möglich
no-option-text = Für { $org } ist keine Anmeldung eingerichtet. Bitte wenden Sie sich an den Shop.
choose-another-organization = Andere Organisation wählen
switch-title = Organisation wechseln
switch-heading = Für { $wanted } anmelden?
switch-current = Sie sind als <strong>{ $who }</strong> für <strong>{ $current }</strong> angemeldet. Wenn Sie sich für { $wanted } anmelden, endet diese Sitzung in diesem Browser.
switch-go = Für { $wanted } anmelden
switch-stay = Für { $current } angemeldet bleiben
sending-form-title = Ihr Formular wird gesendet
sending-form-text = Sie sind wieder angemeldet; Ihr Formular wird gesendet.
send-form = Formular senden

## Kein Zugriff

forbidden-title = Kein Zugriff
forbidden-heading = Sie haben keinen Zugriff auf diese Seite
forbidden-text = Sie sind als <strong>{ $who }</strong> angemeldet, und dieses Konto darf die Seite nicht öffnen.
switch-account = Als jemand anderes anmelden

## Abmelden

sign-out-title = Abmelden
sign-out-heading = Abmelden?
who-signed-in = Sie sind als <strong>{ $name }</strong> für <strong>{ $org }</strong> angemeldet.
who-signed-in-email = Sie sind als <strong>{ $name }</strong> ({ $email }) für <strong>{ $org }</strong> angemeldet.
sign-out = Abmelden
stay-signed-in = Angemeldet bleiben
signed-out-title = Abgemeldet
signed-out-heading = Sie sind abgemeldet
signed-out-text = Sie wurden vom Shop abgemeldet.
idp-session-lives = Bei <strong>{ $idp }</strong> sind Sie weiterhin angemeldet; eine erneute Anmeldung fragt daher womöglich nicht nach Ihrem Passwort. Um auch diese Sitzung zu beenden, melden Sie sich bei { $idp } ab oder schließen Sie den Browser.

## Eine fehlgeschlagene Anmeldung: der Titel, dann was geschah

login-cancelled = Die Anmeldung wurde abgebrochen oder abgelehnt
login-refused = Der Identitätsanbieter hat die Anmeldung abgelehnt
login-expired = Die Anmeldung ist abgelaufen oder kam aus einem anderen Browser
login-link-invalid = Dieser Anmeldelink ist nicht mehr gültig
login-not-verified = Ihre Identität konnte nicht bestätigt werden
login-idp-unavailable = Der Identitätsanbieter ist nicht verfügbar
login-idp-unreadable = Die Antwort des Identitätsanbieters ist nicht lesbar
login-shop-failed = Der Shop konnte Ihre Anmeldung nicht abschließen
login-shop-busy = Der Shop ist ausgelastet
login-not-member = Sie sind kein Mitglied dieser Organisation
login-unknown-to-shop = Ihr Konto ist dem Shop nicht bekannt
login-misconfigured = Die Anmeldung ist nicht richtig eingerichtet
login-step-up-not-given = Der Identitätsanbieter hat die stärkere Anmeldung nicht bestätigt
login-other-user = Jemand anderes hat sich angemeldet

why-idp-refused = Der Identitätsanbieter hat die Anmeldung abgelehnt.
why-idp-refused-code = Der Identitätsanbieter hat die Anmeldung abgelehnt ({ $code }).
why-issuer-mismatch = Die Antwort nennt einen anderen Identitätsanbieter als den, bei dem die Anmeldung begann.
why-expired = Diese Anmeldung ist abgelaufen oder wurde in einem anderen Browser begonnen.
why-no-code = Die Rückmeldung enthielt keinen Autorisierungscode.
why-code-rejected = Der Identitätsanbieter hat den Autorisierungscode abgelehnt.
why-token-rejected = Das ID-Token wurde nicht akzeptiert.
why-unknown-key = Das ID-Token ist mit einem Schlüssel signiert, den der Identitätsanbieter nicht veröffentlicht.
why-unreachable = Der Identitätsanbieter war nicht erreichbar.
why-unreadable = Die Antwort des Identitätsanbieters konnte nicht gelesen werden.
why-shop-failed = Der Shop konnte die Anmeldung nicht abschließen.
why-shop-busy = Beim Shop laufen gerade zu viele Anmeldungen; bitte versuchen Sie es in { $seconds } Sekunden noch einmal.
why-unknown-to-shop = Ihr Konto ist dem Shop nicht bekannt und kann hier nicht angelegt werden; bitte lassen Sie es vom Shop einrichten.
why-not-member = Das Konto { $email } ist kein Mitglied von { $org }.
why-not-member-unnamed = Das Konto, mit dem Sie sich angemeldet haben, ist kein Mitglied von { $org }.
why-misconfigured = Der Identitätsanbieter ist dafür nicht eingerichtet.
why-step-up-not-given = Diese Seite verlangt eine stärkere oder frischere Anmeldung, als der Identitätsanbieter bestätigt hat; melden Sie sich erneut an, gegebenenfalls mit dem zweiten Faktor.
why-other-user = Sie haben sich als eine andere Person angemeldet als die, die hier angemeldet ist; melden Sie sich zuerst ab, um die Person zu wechseln.

## Die Seite der Sitzungen

sessions-title = Ihre Sitzungen
this-browser = dieser Browser
unknown-browser = Ein Browser
session-details = { $organization } über { $idp }
session-times = Angemeldet { $created }, zuletzt genutzt { $used }
session-ends = endet { $ends }
sign-out-here = Hier abmelden
sign-out-this = Diese Sitzung abmelden
sign-out-others = Überall sonst abmelden
sign-out-everywhere = Überall abmelden
not-from-here-title = Nicht von diesem Shop gesendet
not-from-here-text = Sitzungen lassen sich nur auf der Sitzungsseite dieses Shops beenden. Es wurde nichts geändert.
