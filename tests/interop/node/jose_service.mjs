// A resource server on panva's jose with its defaults (createRemoteJWKSet: key set kept up to
// 10 minutes, an unknown kid refetched at most every 30 s): node jose_service.mjs IDP PORT.
// GET /read needs scope read, POST /write needs write; 401 for a refused token, 503 when the
// keys cannot be fetched. No revocation check (stateless JWTs).
import { createServer } from 'node:http';
import * as jose from 'jose';

const [idp, port] = process.argv.slice(2);
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
    ({ payload } = await jose.jwtVerify(token, keys, { issuer: idp, audience: 'jitchaos', algorithms: ['RS256'] }));
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
  const scopes = String(payload.scope ?? '').split(' ');
  if (!scopes.includes(need)) return answer(res, 403, { error: 'insufficient_scope' });
  return answer(res, 200, { ok: true });
}).listen(Number(port), '127.0.0.1');
