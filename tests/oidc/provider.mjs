// A real OpenID provider for the single sign-on tests: the certified `oidc-provider` package,
// configured from the environment by tests/oidc_helpers.py.
//
//   OIDC_PORT          port to listen on (127.0.0.1); 0 picks a free one
//   OIDC_CLIENT_ID     the one registered client (the portal)
//   OIDC_CLIENT_SECRET its secret (client_secret_basic at the token endpoint)
//   OIDC_REDIRECT_URI  the portal's /sso/callback, registered exactly
//   OIDC_ACCOUNTS      JSON: [{"id": "ada", "email": "ada@example.org", "email_verified": true}];
//                      "userinfo_only": true keeps the email out of the ID token (the client
//                      must then ask the userinfo endpoint, as some providers require)
//
// Sign-in uses the package's development interactions: a login form that takes an account id
// (any password), then a consent form. An account id that is not in OIDC_ACCOUNTS does not
// sign in. When listening, one JSON line {"issuer": ...} goes to stdout.
import { generateKeyPairSync, randomBytes } from 'node:crypto';
import { createServer } from 'node:http';
import Provider from 'oidc-provider';

function need(name) {
  const value = process.env[name];
  if (value === undefined || value === '') {
    process.stderr.write(`provider.mjs: set ${name}\n`);
    process.exit(2);
  }
  return value;
}

const accounts = new Map(JSON.parse(need('OIDC_ACCOUNTS')).map((a) => [a.id, a]));
const clientId = need('OIDC_CLIENT_ID');
const clientSecret = need('OIDC_CLIENT_SECRET');
const redirectUri = need('OIDC_REDIRECT_URI');
const port = Number(process.env.OIDC_PORT || '0');

// A fresh signing key per run: the portal must fetch it from jwks_uri to verify ID tokens.
const { privateKey } = generateKeyPairSync('rsa', { modulusLength: 2048 });
const signing = { ...privateKey.export({ format: 'jwk' }), kid: randomBytes(8).toString('hex'), use: 'sig', alg: 'RS256' };

const server = createServer();
server.listen(port, '127.0.0.1', () => {
  const issuer = `http://127.0.0.1:${server.address().port}`;
  const provider = new Provider(issuer, {
    clients: [{
      client_id: clientId,
      client_secret: clientSecret,
      redirect_uris: [redirectUri],
      response_types: ['code'],
      grant_types: ['authorization_code'],
      token_endpoint_auth_method: 'client_secret_basic',
    }],
    jwks: { keys: [signing] },
    cookies: { keys: [randomBytes(32).toString('hex')] },
    claims: { openid: ['sub'], email: ['email', 'email_verified'], profile: ['name'] },
    // The portal must send PKCE (S256) even as a confidential client.
    pkce: { required: () => true },
    features: { devInteractions: { enabled: true } },
    // Scope claims (email) go into the ID token too, as most providers do; an account marked
    // userinfo_only below shows the other way.
    conformIdTokenClaims: false,
    async findAccount(_ctx, id) {
      const account = accounts.get(id);
      if (!account) return undefined;
      return {
        accountId: id,
        async claims(use) {
          if (use === 'id_token' && account.userinfo_only) return { sub: id };
          return { sub: id, email: account.email, email_verified: account.email_verified, name: account.name || id };
        },
      };
    },
  });
  server.on('request', provider.callback());
  process.stdout.write(`${JSON.stringify({ issuer })}\n`);
});

for (const signal of ['SIGTERM', 'SIGINT']) {
  process.on(signal, () => server.close(() => process.exit(0)));
}
