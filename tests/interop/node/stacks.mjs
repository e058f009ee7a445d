// One Node client stack against one jitchaos target, as a service or client built on it would
// use it. Run by tests/interop/test_matrix.py:
//
//   node stacks.mjs STACK CONFIG_JSON
//
// Each check prints nothing until the end; a rotation is asked for with the line
// {"rotate": true} on stdout and goes on when a line arrives on stdin. The last line is
// {"results": {check: "pass" | "n/a" | "fail: why"}}.
import { createInterface } from 'node:readline';

const [stack, rawConfig] = process.argv.slice(2);
const config = JSON.parse(rawConfig);
const lines = createInterface({ input: process.stdin })[Symbol.asyncIterator]();

async function rotate() {
  process.stdout.write(JSON.stringify({ rotate: true }) + '\n');
  const { done } = await lines.next();
  if (done) throw new Error('the test closed stdin instead of rotating');
}

function basic({ id, secret }) {
  return 'Basic ' + Buffer.from(`${encodeURIComponent(id)}:${encodeURIComponent(secret)}`).toString('base64');
}

async function json(response, what) {
  const type = response.headers.get('content-type') ?? '';
  if (!type.startsWith('application/json')) throw new Error(`${what}: content-type ${type}`);
  return response.json();
}

async function discover() {
  const metadata = await json(await fetch(config.discovery), 'discovery');
  if (metadata.issuer !== config.issuer) throw new Error(`issuer ${metadata.issuer}`);
  return metadata;
}

async function serviceToken(metadata, scope = 'read') {
  const response = await fetch(metadata.token_endpoint, {
    method: 'POST',
    headers: { authorization: basic(config.client), 'content-type': 'application/x-www-form-urlencoded' },
    body: new URLSearchParams({ grant_type: 'client_credentials', scope }),
  });
  if (response.status !== 200) throw new Error(`token endpoint answered ${response.status}`);
  return (await json(response, 'token')).access_token;
}

function kidOf(token) {
  return JSON.parse(Buffer.from(token.split('.')[0], 'base64url').toString()).kid;
}

// Runs each check in order; a failed check fails only itself.
async function run(checks) {
  const results = {};
  for (const [name, check] of Object.entries(checks)) {
    if (check === null) {
      results[name] = 'n/a';
      continue;
    }
    try {
      await check();
      results[name] = 'pass';
    } catch (error) {
      results[name] = `fail: ${error?.code ?? error?.name ?? 'Error'}: ${error?.message ?? error}`;
    }
  }
  return results;
}

// panva's jose: a resource server verifying RFC 9068 access tokens with a remote key set.
async function joseStack() {
  const jose = await import('jose');
  let metadata, keySet, firstKid;
  const verify = (token) =>
    jose.jwtVerify(token, keySet, {
      issuer: config.issuer,
      audience: config.audience,
      typ: 'at+jwt',
      algorithms: ['RS256'],
      requiredClaims: ['exp', 'iat', 'sub', 'client_id', 'jti'],
    });
  return run({
    discovery: async () => {
      metadata = await discover();
      // Any time between fetches: the matrix asks whether a rotated key is read, not how often.
      keySet = jose.createRemoteJWKSet(new URL(metadata.jwks_uri), { cooldownDuration: 0 });
    },
    token: async () => {
      const token = await serviceToken(metadata);
      firstKid = kidOf(token);
      const { payload } = await verify(token);
      if (payload.scope !== 'read') throw new Error(`scope ${payload.scope}`);
      await jose.jwtVerify(token, keySet, { issuer: config.issuer, audience: 'another-api' }).then(
        () => { throw new Error('a token for another audience verified'); },
        (error) => { if (error.code !== 'ERR_JWT_CLAIM_VALIDATION_FAILED') throw error; },
      );
    },
    rotation: async () => {
      await rotate();
      const token = await serviceToken(metadata);
      if (kidOf(token) === firstKid) throw new Error('the token after rotation has the old kid');
      await verify(token);
    },
    introspection: null,
    errors: null,
  });
}

// jwks-rsa behind express-jwt: the most common Node resource server.
async function expressStack() {
  const { default: express } = await import('express');
  const { expressjwt } = await import('express-jwt');
  const jwksRsa = await import('jwks-rsa');
  let metadata, base, server, firstKid;
  const call = (token) =>
    fetch(`${base}/read`, { headers: token ? { authorization: `Bearer ${token}` } : {} });
  const expect = async (token, status) => {
    const response = await call(token);
    const body = await response.text();
    if (response.status !== status) throw new Error(`GET /read answered ${response.status}: ${body}`);
    return body;
  };
  const results = await run({
    discovery: async () => {
      metadata = await discover();
      const app = express();
      app.use(
        expressjwt({
          secret: jwksRsa.expressJwtSecret({
            jwksUri: metadata.jwks_uri,
            cache: true,
            rateLimit: true,
            jwksRequestsPerMinute: 10,
          }),
          audience: config.audience,
          issuer: config.issuer,
          algorithms: ['RS256'],
        }),
      );
      app.get('/read', (req, res) => res.json({ sub: req.auth.sub }));
      app.use((err, req, res, next) => res.status(err.status ?? 500).json({ error: err.code ?? 'error', message: err.message }));
      await new Promise((resolve) => { server = app.listen(0, '127.0.0.1', resolve); });
      base = `http://127.0.0.1:${server.address().port}`;
    },
    token: async () => {
      const token = await serviceToken(metadata);
      firstKid = kidOf(token);
      const body = JSON.parse(await expect(token, 200));
      if (body.sub !== config.client.id) throw new Error(`sub ${body.sub}`);
      await expect(null, 401);
      await expect(token.slice(0, -4) + 'AAAA', 401);
    },
    rotation: async () => {
      await rotate();
      const token = await serviceToken(metadata);
      if (kidOf(token) === firstKid) throw new Error('the token after rotation has the old kid');
      await expect(token, 200);
    },
    introspection: null,
    errors: null,
  });
  server?.close();
  return results;
}

// panva's openid-client: discovery, grants, refresh, introspection, revocation, errors.
async function openidClientStack() {
  const client = await import('openid-client');
  const options = { execute: [client.allowInsecureRequests] };
  let service, resource, web, firstIdKid, refreshToken, accessToken;
  const userTokens = async () => {
    const verifier = client.randomPKCECodeVerifier();
    const state = client.randomState();
    const url = client.buildAuthorizationUrl(web, {
      redirect_uri: config.web.redirect,
      scope: 'openid read',
      code_challenge: await client.calculatePKCECodeChallenge(verifier),
      code_challenge_method: 'S256',
      state,
      login_hint: config.web.user,
    });
    const response = await fetch(url, { redirect: 'manual' });
    if (response.status !== 302) throw new Error(`authorize answered ${response.status}`);
    return client.authorizationCodeGrant(web, new URL(response.headers.get('location')), {
      pkceCodeVerifier: verifier,
      expectedState: state,
    });
  };
  return run({
    discovery: async () => {
      const discovery = new URL(config.discovery);
      service = await client.discovery(discovery, config.client.id, config.client.secret, undefined, options);
      resource = await client.discovery(discovery, config.resource.id, config.resource.secret, undefined, options);
      web = await client.discovery(discovery, config.web.id, config.web.secret, undefined, options);
      if (service.serverMetadata().issuer !== config.issuer) throw new Error('issuer');
    },
    token: async () => {
      const granted = await client.clientCredentialsGrant(service, { scope: 'read' });
      if (granted.token_type.toLowerCase() !== 'bearer' || granted.scope !== 'read') {
        throw new Error(`token answer ${JSON.stringify({ ...granted, access_token: '...' })}`);
      }
      accessToken = granted.access_token;
      const tokens = await userTokens();  // the ID token's claims are checked by the library
      firstIdKid = kidOf(tokens.id_token);
      const claims = tokens.claims();
      if (claims.sub !== config.web.user) throw new Error(`ID token sub ${claims.sub}`);
      const refreshed = await client.refreshTokenGrant(web, tokens.refresh_token);
      if (refreshed.refresh_token === tokens.refresh_token) throw new Error('refresh token not rotated');
      refreshToken = refreshed.refresh_token;
    },
    rotation: async () => {
      await rotate();
      // A new login after the rotation: its ID token carries the new kid.
      const tokens = await userTokens();
      if (kidOf(tokens.id_token) === firstIdKid) throw new Error('the ID token after rotation has the old kid');
      if (tokens.claims().sub !== config.web.user) throw new Error('ID token after rotation');
      await client.refreshTokenGrant(web, tokens.refresh_token);
    },
    introspection: async () => {
      const active = await client.tokenIntrospection(resource, accessToken);
      if (active.active !== true || active.scope !== 'read' || active.client_id !== config.client.id) {
        throw new Error(`introspection ${JSON.stringify(active)}`);
      }
      await client.tokenRevocation(service, accessToken);
      const revoked = await client.tokenIntrospection(resource, accessToken);
      if (revoked.active !== false) throw new Error('a revoked token introspects active');
    },
    errors: async () => {
      await client.clientCredentialsGrant(service, { scope: 'no-such-scope' }).then(
        () => { throw new Error('an unknown scope was granted'); },
        (error) => {
          if (!(error instanceof client.ResponseBodyError) || error.error !== 'invalid_scope') throw error;
        },
      );
      const stranger = await client.discovery(new URL(config.discovery), config.client.id, 'wrong-secret', undefined, options);
      await client.clientCredentialsGrant(stranger, { scope: 'read' }).then(
        () => { throw new Error('a wrong secret was accepted'); },
        async (error) => {
          // RFC 6749 §5.2: a client that sent Basic credentials gets 401 with a Basic challenge,
          // which openid-client surfaces as the challenge, the error body beside it.
          if (!(error instanceof client.WWWAuthenticateChallengeError) || error.status !== 401) throw error;
          if (error.cause[0]?.scheme !== 'basic') throw new Error(`challenge ${JSON.stringify(error.cause)}`);
          const body = await error.response.json();
          if (body.error !== 'invalid_client') throw new Error(`error ${body.error}`);
        },
      );
    },
  });
}

const stacks = { jose: joseStack, 'jwks-rsa': expressStack, 'openid-client': openidClientStack };
if (!(stack in stacks)) {
  process.stderr.write(`unknown stack ${stack}; one of ${Object.keys(stacks).join(', ')}\n`);
  process.exit(2);
}
const results = await stacks[stack]();
process.stdout.write(JSON.stringify({ results }) + '\n');
process.exit(0);
