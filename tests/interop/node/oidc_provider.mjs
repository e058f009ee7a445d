// A real, certified OpenID provider this project did not write (panva's node-oidc-provider),
// configured as a company's IdP for machine clients: client credentials, RFC 8707 resource
// indicators, RFC 7662 introspection and RFC 7009 revocation, JWT or opaque access tokens with a
// fixed lifetime. Keys are generated per run.
//
//   node oidc_provider.mjs CONFIG_JSON
//
// CONFIG_JSON: {"port": 0, "format": "jwt" | "opaque", "ttl": 90,
//               "clients": [{"client_id": "...", "client_secret": "...", "scope": "read write"}],
//               "resources": {"https://api.example": "read write"}, "defaultResource": "...",
//               "registration": false}
// With "registration": true, anyone may register a client (RFC 7591, open registration).
// Prints {"issuer": URL} on stdout once it listens; stops on SIGTERM.
import { createServer } from 'node:http';
import * as jose from 'jose';
import Provider, { errors } from 'oidc-provider';

const config = JSON.parse(process.argv[2]);
const { privateKey } = await jose.generateKeyPair('RS256', { extractable: true });
const jwk = await jose.exportJWK(privateKey);
jwk.kid = await jose.calculateJwkThumbprint(jwk);
Object.assign(jwk, { use: 'sig', alg: 'RS256' });

const server = createServer();
await new Promise((resolve) => server.listen(config.port ?? 0, '127.0.0.1', resolve));
const issuer = `http://127.0.0.1:${server.address().port}`;
const scopes = new Set(['openid', ...Object.values(config.resources).flatMap((s) => s.split(' '))]);

const provider = new Provider(issuer, {
  clients: config.clients.map((client) => ({
    client_id: client.client_id,
    client_secret: client.client_secret,
    grant_types: ['client_credentials'],
    response_types: [],
    redirect_uris: [],
    ...(client.scope ? { scope: client.scope } : {}), // a resource server asks for none
    token_endpoint_auth_method: 'client_secret_basic',
  })),
  jwks: { keys: [jwk] },
  scopes: [...scopes],
  features: {
    devInteractions: { enabled: false },
    clientCredentials: { enabled: true },
    introspection: { enabled: true },
    revocation: { enabled: true },
    registration: { enabled: Boolean(config.registration) },
    resourceIndicators: {
      enabled: true,
      defaultResource: async (ctx, client, oneOf) => oneOf ?? config.defaultResource,
      useGrantedResource: async () => true,
      getResourceServerInfo: async (ctx, resource) => {
        const scope = config.resources[resource];
        if (scope === undefined) throw new errors.InvalidTarget();
        return {
          scope,
          audience: resource,
          accessTokenTTL: config.ttl,
          accessTokenFormat: config.format,
          jwt: { sign: { alg: 'RS256' } },
        };
      },
    },
  },
  ttl: { ClientCredentials: config.ttl },
});
provider.proxy = false;
server.on('request', provider.callback());
process.on('SIGTERM', () => server.close(() => process.exit(0)));
process.stdout.write(JSON.stringify({ issuer }) + '\n');
