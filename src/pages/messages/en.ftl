# The texts of the sidecar's own pages, in English.
#
# Copy this file to `<language>.ftl` in `pages.messages` to add a language or to change
# texts; `sso-sidecar check` names any message a language lacks. Texts may hold HTML
# (`<strong>`); the values put into them (`{ $name }`) are escaped.

## Shared by many pages

request-id = Request id: { $id }
go-to-shop = Go to the shop
back-to-shop = Back to the shop
sign-in-again = Sign in again
support = Need help? Contact { $contact }.
details = Details: { $detail }
skip-to-content = Skip to the content

## Errors of the request or the shop

bad-address-title = Bad request
bad-address-text = The address of this request is not valid.
shop-timeout-title = The shop is not answering
shop-timeout-text = The shop did not answer in time. Please try again in a moment.
shop-unreachable-title = The shop is not reachable
shop-unreachable-text = The shop could not be reached. Please try again in a moment.
failure-title = Something went wrong
failure-text = The request could not be completed. Please try again.
not-found-title = Not found
not-found-text = This address belongs to the sign-in service and does not exist.
too-many-title = Too many sign-in attempts
too-many-text = There were too many sign-in attempts from your network. Please wait a minute and try again.
session-expired-title = Your session has expired
form-too-large-text = Please sign in again and send the form once more; it was too large to keep.

## The identity provider cannot be reached

idp-unreachable-title = The identity provider is not reachable
idp-unreachable-text = Your sign-in has run out and your organization's identity provider cannot be reached to renew it. Please sign in again in a moment.
idp-down-title = The sign-in service is not available
idp-down-text = { $idp } cannot be reached at the moment, so you were not sent there.
idp-down-others = You can sign in another way:
idp-down-retry = Try { $idp } again

## Signing in

sign-in-title = Sign in
organization-label = Organization
organization-hint = The name of the company or organization you work for.
continue = Continue
unknown-organization = We do not know this organization. Please check the name and try again.
sign-in-to = Sign in to { $org }
choose-idp = Choose how you want to sign in:
choose-one-option = Please choose one of these sign-in options.
not-this-organization = Not { $org }? Choose another organization
no-option-title = Sign-in is not available
no-option-text = No sign-in option is set up for { $org }. Please contact the shop.
choose-another-organization = Choose another organization
switch-title = Switch organization
switch-heading = Sign in for { $wanted }?
switch-current = You are signed in as <strong>{ $who }</strong> for <strong>{ $current }</strong>. Signing in for { $wanted } ends that session in this browser.
switch-go = Sign in for { $wanted }
switch-stay = Stay signed in for { $current }
sending-form-title = Sending your form
sending-form-text = You are signed in again; your form is being sent.
send-form = Send the form

## No access

forbidden-title = No access
forbidden-heading = You do not have access to this page
forbidden-text = You are signed in as <strong>{ $who }</strong>, and this account may not open it.
switch-account = Sign in as someone else

## Signing out

sign-out-title = Sign out
sign-out-heading = Sign out?
who-signed-in = You are signed in as <strong>{ $name }</strong> for <strong>{ $org }</strong>.
who-signed-in-email = You are signed in as <strong>{ $name }</strong> ({ $email }) for <strong>{ $org }</strong>.
sign-out = Sign out
stay-signed-in = Stay signed in
signed-out-title = Signed out
signed-out-heading = You are signed out
signed-out-text = You have been signed out of the shop.
idp-session-lives = You are still signed in at <strong>{ $idp }</strong>, so signing in again may not ask for your password. To end that too, sign out at { $idp }, or close the browser.

## A sign-in that failed: the title, then what happened

login-cancelled = Sign-in was cancelled or denied
login-refused = The identity provider refused the sign-in
login-expired = Sign-in expired or came from another browser
login-link-invalid = This sign-in link is no longer valid
login-not-verified = Your identity could not be verified
login-idp-unavailable = The identity provider is not available
login-idp-unreadable = The identity provider sent an answer we cannot read
login-shop-failed = The shop could not complete your sign-in
login-shop-busy = The shop is busy
login-not-member = You are not a member of this organization
login-unknown-to-shop = Your account is not known to the shop
login-misconfigured = Sign-in is not set up correctly
login-step-up-not-given = The identity provider did not give the stronger sign-in
login-other-user = Someone else signed in

why-idp-refused = The identity provider refused the sign-in.
why-idp-refused-code = The identity provider refused the sign-in ({ $code }).
why-issuer-mismatch = The sign-in response names another identity provider than the one the sign-in was started with.
why-expired = This sign-in has expired or was started in another browser.
why-no-code = The callback carried no authorization code.
why-code-rejected = The identity provider refused the authorization code.
why-token-rejected = The ID token was not accepted.
why-unknown-key = The ID token is signed with a key the identity provider does not publish.
why-unreachable = The identity provider could not be reached.
why-unreadable = The identity provider's answer could not be read.
why-shop-failed = The shop could not complete the sign-in.
why-shop-busy = The shop has too many sign-ins at the moment; please try again in { $seconds } seconds.
why-unknown-to-shop = Your account is not known to the shop, and it cannot be created here; please ask the shop to set it up.
why-not-member = The account { $email } is not a member of { $org }.
why-not-member-unnamed = The account you signed in with is not a member of { $org }.
why-misconfigured = The identity provider is not configured for this.
why-step-up-not-given = This page needs a stronger or more recent sign-in than the identity provider gave; sign in again, with the second factor if you are asked for one.
why-other-user = You signed in as someone else than the person signed in here; sign out first to change who is signed in.

## The sessions page

sessions-title = Your sessions
this-browser = this browser
unknown-browser = A browser
session-details = { $organization } with { $idp }
session-times = Signed in { $created }, last used { $used }
session-ends = ends { $ends }
sign-out-here = Sign out here
sign-out-this = Sign out this session
sign-out-others = Sign out everywhere else
sign-out-everywhere = Sign out everywhere
not-from-here-title = Not sent from this shop
not-from-here-text = Sessions can only be ended from the sessions page of this shop. Nothing was changed.
