import { createSign, generateKeyPairSync, type KeyObject } from 'node:crypto';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';

/** Claims of a Google-issued OIDC token as Pub/Sub push sends it. */
export interface IdTokenClaims {
  iss?: string;
  aud?: string;
  sub?: string;
  email?: string;
  email_verified?: boolean;
  iat?: number;
  exp?: number;
}

/** A local stand-in for Google's token signing: an RSA key and the certificate endpoint for it. */
export interface LocalIssuer {
  /** Serves `{ kid: PEM }`, the shape of Google's `oauth2/v1/certs`. */
  readonly certsUrl: string;
  /** How many times the certificates were fetched. */
  readonly fetches: () => number;
  /** Signs `claims` (defaults: Google's issuer, issued now, valid an hour) with the served key. */
  sign(claims: IdTokenClaims, options?: { key?: KeyObject; kid?: string }): string;
  /** A key the endpoint does not serve, for bad signatures. */
  readonly strangerKey: KeyObject;
  /** Stops the certificate endpoint. */
  close(): Promise<void>;
}

function base64url(value: string | Buffer): string {
  return Buffer.from(value).toString('base64url');
}

/** Starts a certificate endpoint on 127.0.0.1 for a freshly generated RSA key. */
export async function startLocalIssuer(): Promise<LocalIssuer> {
  const kid = 'test-key-1';
  const { privateKey, publicKey } = generateKeyPairSync('rsa', { modulusLength: 2048 });
  const stranger = generateKeyPairSync('rsa', { modulusLength: 2048 });
  const pem = publicKey.export({ type: 'spki', format: 'pem' }).toString();
  let fetches = 0;
  const server = createServer((request, response) => {
    fetches += 1;
    response.writeHead(200, { 'content-type': 'application/json', 'cache-control': 'public, max-age=3600' });
    response.end(JSON.stringify({ [kid]: pem }));
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  return {
    certsUrl: `http://127.0.0.1:${port}/oauth2/v1/certs`,
    fetches: () => fetches,
    strangerKey: stranger.privateKey,
    sign(claims, options = {}) {
      const now = Math.floor(Date.now() / 1000);
      const header = { alg: 'RS256', typ: 'JWT', kid: options.kid ?? kid };
      const payload = { iss: 'https://accounts.google.com', iat: now, exp: now + 3600, ...claims };
      const signed = `${base64url(JSON.stringify(header))}.${base64url(JSON.stringify(payload))}`;
      const signature = createSign('RSA-SHA256').update(signed).sign(options.key ?? privateKey);
      return `${signed}.${base64url(signature)}`;
    },
    async close() {
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}
