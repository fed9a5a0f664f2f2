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
// Merge Cart (POST /{projectKey}/carts/customer-id={id}/merge, commercetools' API since
// October 2025), which the mock does not have yet: a fake of its documented behaviour on the
// mock's own storage. The anonymous cart is the active cart with `anonymousId` and no
// customer (another customer's cart is never taken over: 400). MergeWithExistingCustomerCart
// copies its line items into the customer's most recently modified active cart (same
// product and variant: the larger quantity) and marks it Merged; without such a cart, and
// with UseAsNewActiveCustomerCart, the anonymous cart becomes the customer's.
const storage = mock.project(projectKey)._storage;
mock.app.post('/:project/carts/customer-id=:customerId/merge', async (request, reply) => {
  const { project, customerId } = request.params;
  const draft = request.body || {};
  const carts = await storage.all(project, 'cart');
  const anonymous = carts.find((c) => c.cartState === 'Active' && !c.customerId
    && (draft.anonymousId ? c.anonymousId === draft.anonymousId : c.id === draft.anonymousCart?.id));
  if (!anonymous) {
    return reply.code(400).send({ statusCode: 400, message: 'No anonymous cart to merge.',
      errors: [{ code: 'InvalidOperation', message: 'No anonymous cart to merge.' }] });
  }
  const now = new Date().toISOString();
  const existing = carts
    .filter((c) => c.cartState === 'Active' && c.customerId === customerId)
    .sort((a, b) => b.lastModifiedAt.localeCompare(a.lastModifiedAt))[0];
  if (!existing || draft.mergeMode === 'UseAsNewActiveCustomerCart') {
    const taken = { ...anonymous, customerId, version: anonymous.version + 1, lastModifiedAt: now };
    await storage.add(project, 'cart', taken);
    return reply.code(200).send(taken);
  }
  const lineItems = [...existing.lineItems];
  for (const item of anonymous.lineItems) {
    const same = lineItems.findIndex((l) => l.productId === item.productId && l.variant?.id === item.variant?.id);
    if (same < 0) lineItems.push(item);
    else lineItems[same] = { ...lineItems[same], quantity: Math.max(lineItems[same].quantity, item.quantity) };
  }
  const merged = { ...existing, lineItems, version: existing.version + 1, lastModifiedAt: now };
  await storage.add(project, 'cart', merged);
  await storage.add(project, 'cart', { ...anonymous, cartState: 'Merged', version: anonymous.version + 1, lastModifiedAt: now });
  return reply.code(200).send(merged);
});
await mock.app.listen({ port: 0, host: '127.0.0.1' });
const { port } = mock.app.server.address();
console.log(JSON.stringify({ url: `http://127.0.0.1:${port}`, port }));
