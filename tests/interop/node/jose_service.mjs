// A resource server on panva's jose with its defaults (createRemoteJWKSet: key set kept up to
// 10 minutes, an unknown kid refetched at most every 30 s):
//   node jose_service.mjs IDP PORT [--issuer ISS] [--audience AUD] [--permission-cache SECONDS]
// GET /read needs scope read, POST /write needs write; 401 for a refused token, 503 when the
// keys cannot be fetched. No revocation check (stateless JWTs).
// --permission-cache is the known bug this stack is tested with: the scopes first seen for a
// subject are remembered that many seconds (to spare a permission lookup), so after a role
// change the subject's next, narrower token keeps the old scopes and a wider one is refused.
// Without it the service is the correct twin.
import { createServer } from 'node:http';
import { parseArgs } from 'node:util';
import * as jose from 'jose';

const { values: options, positionals } = parseArgs({
  allowPositionals: true,
  options: {
    issuer: { type: 'string' },
    audience: { type: 'string', default: 'jitchaos' },
    'permission-cache': { type: 'string', default: '0' },
  },
});
const [idp, port] = positionals;
const issuer = options.issuer ?? idp;
const cacheSeconds = Number(options['permission-cache']);
const permissions = new Map(); // sub -> { at, scopes }
const keys = jose.createRemoteJWKSet(new URL(`${idp}/jwks`));
const routes = { 'GET /read': 'read', 'POST /write': 'write' };

function answer(res, status, body) {
  res.writeHead(status, { 'content-type': 'application/json' });
  res.end(JSON.stringify(body));
}

createServer(async (req, res) => {
  req.resume();
  const path = new URL(req.url, 'http://service').pathname;
  if (path === '/health') return answer(res, 200, { ok: true });
  const need = routes[`${req.method} ${path}`];
  if (!need) return answer(res, 404, { error: 'not_found' });
  const [scheme, token] = (req.headers.authorization ?? '').split(' ');
  if (scheme?.toLowerCase() !== 'bearer' || !token) return answer(res, 401, { error: 'invalid_request' });
  let payload;
  try {
    ({ payload } = await jose.jwtVerify(token, keys, { issuer, audience: options.audience, algorithms: ['RS256'] }));
  } catch (error) {
    // The key set could not be had (a failed, slow or broken JWKS answer): not the token's fault.
    const unavailable =
      error instanceof jose.errors.JWKSTimeout ||
      error instanceof jose.errors.JWKSInvalid ||
      error instanceof TypeError ||
      (error.code === 'ERR_JOSE_GENERIC' && /JSON Web Key Set/.test(error.message));
    if (unavailable) {
      return answer(res, 503, { error: 'temporarily_unavailable' });
    }
    return answer(res, 401, { error: 'invalid_token', code: error.code });
  }
  let scopes = String(payload.scope ?? '').split(' ');
  if (cacheSeconds > 0) {
    const now = Date.now() / 1000;
    const known = permissions.get(payload.sub);
    if (known && now - known.at < cacheSeconds) scopes = known.scopes;
    else permissions.set(payload.sub, { at: now, scopes });
  }
  if (!scopes.includes(need)) return answer(res, 403, { error: 'insufficient_scope' });
  return answer(res, 200, { ok: true });
}).listen(Number(port), '127.0.0.1');
