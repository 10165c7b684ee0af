// A real OpenID provider (the npm package oidc-provider) for extadmin's single sign-on tests.
//
// One confidential client (extadmin), three static accounts with a groups claim, and the package's
// development login and consent pages, which the tests drive in Chromium. Configured from the
// environment by tests/browser/test_sso.py; prints "listening <issuer>" once it answers.
// Test-only: it accepts any password, and its keys live only as long as the process.
import { generateKeyPairSync } from 'node:crypto';

import Provider from 'oidc-provider';

const env = (name) => {
  const value = process.env[name];
  if (!value) {
    console.error(`provider.js: ${name} is not set`);
    process.exit(2);
  }
  return value;
};

const port = Number(env('OIDC_PORT'));
const issuer = `http://127.0.0.1:${port}`;

const ACCOUNTS = {
  alice: { name: 'Alice Operator', email: 'alice@example.test', groups: ['ext-admins', 'staff'] },
  bob: { name: 'Bob Viewer', email: 'bob@example.test', groups: ['ext-viewers'] },
  // carol's address is a local account's too: she must never be signed in as that account.
  carol: { name: 'Carol Nobody', email: 'carol@example.test', groups: [] },
};

// A fresh RS256 key per run: nothing signed by it outlives the test session.
const { privateKey } = generateKeyPairSync('rsa', { modulusLength: 2048 });
const signingKey = { ...privateKey.export({ format: 'jwk' }), kid: 'test-key', alg: 'RS256', use: 'sig' };

const provider = new Provider(issuer, {
  clients: [
    {
      client_id: env('OIDC_CLIENT_ID'),
      client_secret: env('OIDC_CLIENT_SECRET'),
      client_name: 'extadmin',
      redirect_uris: [env('OIDC_REDIRECT_URI')],
      post_logout_redirect_uris: [env('OIDC_POST_LOGOUT_REDIRECT_URI')],
      response_types: ['code'],
      grant_types: ['authorization_code'],
      token_endpoint_auth_method: 'client_secret_basic',
    },
  ],
  jwks: { keys: [signingKey] },
  cookies: { keys: ['extadmin-test-provider-cookie-key'] },
  scopes: ['openid', 'email', 'profile', 'groups'],
  claims: {
    openid: ['sub'],
    email: ['email', 'email_verified'],
    profile: ['name', 'preferred_username'],
    groups: ['groups'],
  },
  features: { devInteractions: { enabled: true }, rpInitiatedLogout: { enabled: true } },
  async findAccount(ctx, id) {
    const account = ACCOUNTS[id];
    if (!account) {
      return undefined;
    }
    return {
      // oidc-provider makes the login name the subject (sub). extadmin matches users by issuer and
      // sub, never by user name or e-mail: carol's name and address are also a local account's.
      accountId: id,
      async claims() {
        return {
          sub: id,
          preferred_username: id,
          name: account.name,
          email: account.email,
          email_verified: true,
          groups: account.groups,
        };
      },
    };
  },
});

provider.listen(port, '127.0.0.1', () => {
  console.log(`listening ${issuer}`);
});
