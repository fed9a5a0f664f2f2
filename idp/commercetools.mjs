// commercetools' HTTP API for sso-sidecar's tests: npm `@labdigital/commercetools-mock`
// (an emulation of commercetools' REST API and OAuth client-credentials endpoint that is not
// ours), served on 127.0.0.1 on a free port. Settings from the JSON in CT_CONFIG:
//   projectKey      the project (default "shop")
//   customerGroups  customer group keys to create
// Prints one JSON line {"url": ...} when ready. API calls need a token from POST /oauth/token
// (client credentials; any id and secret are accepted).
import { CommercetoolsMock, getBaseResourceProperties } from '@labdigital/commercetools-mock';

const settings = JSON.parse(process.env.CT_CONFIG || '{}');
const projectKey = settings.projectKey || 'shop';
const mock = new CommercetoolsMock({
  enableAuthentication: true,
  validateCredentials: false,
  defaultProjectKey: projectKey,
  silent: true,
});
for (const key of settings.customerGroups || []) {
  await mock.project(projectKey).unsafeAdd('customer-group', {
    ...getBaseResourceProperties(),
    key,
    name: key,
  });
}
await mock.app.listen({ port: 0, host: '127.0.0.1' });
const { port } = mock.app.server.address();
console.log(JSON.stringify({ url: `http://127.0.0.1:${port}`, port }));
