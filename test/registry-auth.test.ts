// The registry client's authentication against real registries: token
// auth through a GHCR-like issuer, htpasswd Basic auth, and the errors a
// person sees when credentials are wrong or missing.

import { setTimeout as wait } from 'node:timers/promises';

import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import {
  AuthenticationError, InterruptedError, TransientError,
} from '../functions/lib/errors.js';
import { RegistryClient } from '../functions/lib/registry/client.js';
import { staticCredentials } from '../functions/lib/registry/credentials.js';
import type { Credentials } from '../functions/lib/registry/types.js';
import {
  createLayout, freePort, pushFixture, requireBinaries, startProxy,
  startRegistry, stopAll, type Fixture, type TestProxy, type TestRegistry,
} from './harness/index.js';

let image: Fixture;

beforeAll(async () => {
  requireBinaries();
  const layout = await createLayout();
  image = await layout.image({ ref: 'image' });
});

afterAll(stopAll);

/** A client of a test registry (or proxy) over plain HTTP. */
function clientOf(registry: { host: string },
  credentials?: Credentials, options: { attempts?: number } = {}):
  RegistryClient {
  return new RegistryClient({
    endpoint: { host: registry.host, scheme: 'http' },
    credentials: staticCredentials(credentials
      ? { [registry.host]: credentials } : {}),
    retry: { attempts: options.attempts ?? 3, baseDelayMs: 10 },
  });
}

/** Token requests the issuer granted for exactly these scopes. */
function tokenRequestsFor(registry: TestRegistry, scopes: string[]):
  number {
  return registry.tokenIssuer!.requests().filter((r) =>
    r.status === 200 &&
    [...r.scopes].sort().join(' ') === [...scopes].sort().join(' ')).length;
}

describe('RegistryClient with token auth', () => {
  let registry: TestRegistry;

  beforeAll(async () => {
    registry = await startRegistry({ auth: 'token',
      token: { refreshTokens: { 'refresh-abc': 'harness-user' } } });
    await pushFixture(image, registry, 'team/app:v1');
    await pushFixture(image, registry, 'team/other:v1');
  });

  it('fetches one token per scope set and reuses it across requests',
    async () => {
      // Prepare
      const client = clientOf(registry, registry.credentials);
      registry.tokenIssuer!.resetRequests();

      // Act
      await client.headManifest('team/app', 'v1');
      await client.getManifest('team/app', 'v1');
      await client.getManifest('team/app', image.digest);
      await client.headBlob('team/app', image.layers![0]!.digest);
      await client.getManifest('team/other', 'v1');

      // Assess
      expect(tokenRequestsFor(registry, ['repository:team/app:pull']))
        .toBe(1);
      expect(tokenRequestsFor(registry, ['repository:team/other:pull']))
        .toBe(1);
      expect(client.tokenRequests).toBe(2);
      expect(registry.tokenIssuer!.requests()
        .every((r) => r.authorization === 'basic' && r.method === 'GET'))
        .toBe(true);
    });

  it('shares one token request among concurrent requests', async () => {
    // Prepare
    const client = clientOf(registry, registry.credentials);
    await client.headManifest('team/app', 'v1');
    registry.tokenIssuer!.resetRequests();

    // Act
    await Promise.all(image.blobs.map((blob) =>
      client.headBlob('team/other', blob.digest)));

    // Assess
    expect(tokenRequestsFor(registry, ['repository:team/other:pull']))
      .toBe(1);
  });

  it('names each waiting request\'s own image when a shared token ' +
    'request fails', async () => {
    // Prepare
    const client = clientOf(registry, registry.credentials);
    await client.headManifest('team/other', 'v1');
    const issuer = registry.tokenIssuer!;
    issuer.resetRequests();
    issuer.failNext(1, { status: 401 });

    // Act
    const [byTag, byDigest] = await Promise.all([
      client.getManifest('team/app', 'v1').catch((e: unknown) => e),
      client.getManifest('team/app', image.digest).catch((e: unknown) => e),
    ]);

    // Assess
    expect(issuer.requests().map((r) => r.status)).toEqual([401]);
    expect(byTag).toBeInstanceOf(AuthenticationError);
    expect(byDigest).toBeInstanceOf(AuthenticationError);
    const tagMessage = (byTag as Error).message;
    const digestMessage = (byDigest as Error).message;
    expect(tagMessage).toContain(`${registry.host}/team/app:v1`);
    expect(tagMessage).not.toContain(image.digest);
    expect(digestMessage).toContain(
      `${registry.host}/team/app@${image.digest}`);
    expect(digestMessage).not.toContain('team/app:v1');
    expect((byTag as AuthenticationError).hint)
      .toBe(`check the credentials for ${registry.host} ` +
        `(docker login ${registry.host})`);
    expect(byTag).not.toBe(byDigest);
  });

  it('keeps fetching a shared token for the other requests when one ' +
    'waiting request is stopped', async () => {
    // Prepare
    const client = clientOf(registry, registry.credentials);
    await client.headManifest('team/other', 'v1');
    const issuer = registry.tokenIssuer!;
    const stop = new AbortController();
    issuer.setGrantPolicy((request) => {
      stop.abort();
      return request.actions;
    });

    // Act
    const [stopped, kept] = await Promise.all([
      client.getManifest('team/app', image.digest, stop.signal)
        .catch((e: unknown) => e),
      client.getManifest('team/app', 'v1'),
    ]).finally(() => issuer.setGrantPolicy());

    // Assess
    expect(kept.digest).toBe(image.digest);
    expect(stopped).toBeInstanceOf(InterruptedError);
    expect((stopped as Error).message)
      .toContain(`team/app@${image.digest}`);
    expect(client.tokenRequests).toBe(2);
  });

  it('uses a token asked for pull and push for a pull of the same ' +
    'repository', async () => {
    // Prepare
    const client = clientOf(registry, registry.credentials);
    const manifest = await client.getManifest('team/app', 'v1');
    await client.putManifest('team/app', 'v2', manifest);
    registry.tokenIssuer!.resetRequests();
    const fresh = clientOf(registry, registry.credentials);
    await fresh.putManifest('team/app', 'v3', manifest);

    // Act
    const head = await fresh.headManifest('team/app', 'v3');

    // Assess
    expect(head?.digest).toBe(image.digest);
    expect(fresh.tokenRequests).toBe(1);
  });

  it('renews the token when one expires', async () => {
    // Prepare
    const shortLived = await startRegistry({ auth: 'token',
      token: { tokenTtlSeconds: 1 } });
    await pushFixture(image, shortLived, 'team/app:v1');
    const client = clientOf(shortLived, shortLived.credentials);
    await client.headManifest('team/app', 'v1');

    // Act
    await wait(1100);
    await client.headManifest('team/app', 'v1');

    // Assess
    expect(client.tokenRequests).toBe(2);
    await shortLived.stop();
  });

  it('fetches a new token when the registry answers 401 to one',
    async () => {
      // Prepare
      const proxy = await startProxy(registry);
      const client = clientOf(proxy, registry.credentials);
      await client.headManifest('team/app', 'v1');
      const issuer = registry.tokenIssuer!;
      let refused = 0;
      proxy.intercept((req, res) => {
        if (refused > 0 || req.method !== 'GET' ||
          !req.url?.includes('/manifests/')) return false;
        refused++;
        res.writeHead(401, { 'www-authenticate': `Bearer realm=` +
          `"${issuer.realm}",service="${issuer.service}",` +
          'scope="repository:team/app:pull"' });
        res.end();
        return true;
      });

      // Act
      const manifest = await client.getManifest('team/app', 'v1');

      // Assess
      expect(manifest.digest).toBe(image.digest);
      expect(refused).toBe(1);
      expect(client.tokenRequests).toBe(2);
      await proxy.stop();
    });

  it('retries a token service that answers 503, then uses its token',
    async () => {
      // Prepare
      const client = clientOf(registry, registry.credentials);
      registry.tokenIssuer!.resetRequests();
      registry.tokenIssuer!.failNext(2, { status: 503 });

      // Act
      const head = await client.headManifest('team/app', 'v1');

      // Assess
      expect(head?.digest).toBe(image.digest);
      expect(registry.tokenIssuer!.requests().map((r) => r.status))
        .toEqual([503, 503, 200]);
    });

  it('gives up on a token service that keeps failing, with a ' +
    'TransientError', async () => {
    // Prepare
    const client = clientOf(registry, registry.credentials,
      { attempts: 2 });
    registry.tokenIssuer!.failNext(2, { status: 503 });

    // Act
    const error = await client.headManifest('team/app', 'v1')
      .catch((e: unknown) => e);

    // Assess
    expect(error).toBeInstanceOf(TransientError);
    expect((error as Error).message).toMatch(
      /token service .* answered HTTP 503 after 2 attempts/);
  });

  it('exchanges an identity token in an OAuth2 POST', async () => {
    // Prepare
    const client = clientOf(registry, { identityToken: 'refresh-abc' });
    registry.tokenIssuer!.resetRequests();

    // Act
    const head = await client.headManifest('team/app', 'v1');

    // Assess
    expect(head?.digest).toBe(image.digest);
    const [request] = registry.tokenIssuer!.requests();
    expect(request).toMatchObject({ method: 'POST',
      grantType: 'refresh_token', status: 200,
      scopes: ['repository:team/app:pull'] });
  });

  it('refuses a wrong password with an AuthenticationError naming the ' +
    'registry and never the password', async () => {
    // Prepare
    const password = 'wrong-password-4f9c2a';
    const client = clientOf(registry,
      { username: registry.credentials.username, password });

    // Act
    const error = await client.getManifest('team/app', 'v1')
      .catch((e: unknown) => e);

    // Assess
    expect(error).toBeInstanceOf(AuthenticationError);
    const failure = error as AuthenticationError;
    expect(failure.name).toBe('AuthenticationError');
    expect(failure.message).toContain(registry.host);
    expect(failure.message).toContain('team/app');
    expect(failure.status).toBe(401);
    expect(failure.hint).toContain(`docker login ${registry.host}`);
    expect(`${failure.message} ${failure.hint} ${failure.stack}`)
      .not.toContain(password);
  });

  it('says credentials are missing when there are none', async () => {
    // Prepare
    const client = clientOf(registry);

    // Act
    const error = await client.getManifest('team/app', 'v1')
      .catch((e: unknown) => e);

    // Assess
    expect(error).toBeInstanceOf(AuthenticationError);
    expect((error as Error).message).toMatch(/none were found|anonymous/);
  });

  it('pulls anonymously where the issuer grants anonymous pull',
    async () => {
      // Prepare
      const open = await startRegistry({ auth: 'token',
        token: { anonymousPull: true } });
      await pushFixture(image, open, 'public/app:v1');
      const client = clientOf(open);
      open.tokenIssuer!.resetRequests();

      // Act
      const manifest = await client.getManifest('public/app', 'v1');

      // Assess
      expect(manifest.digest).toBe(image.digest);
      expect(open.tokenIssuer!.requests()
        .filter((r) => r.status === 200)
        .every((r) => r.authorization === 'none')).toBe(true);
      await open.stop();
    });
});

describe('RegistryClient with htpasswd (Basic) auth', () => {
  let registry: TestRegistry;

  beforeAll(async () => {
    registry = await startRegistry({ auth: 'htpasswd' });
    await pushFixture(image, registry, 'team/app:v1');
  });

  it('answers the Basic challenge with the credentials', async () => {
    // Prepare
    const client = clientOf(registry, registry.credentials);

    // Act
    const manifest = await client.getManifest('team/app', 'v1');
    const tags = await client.listTags('team/app');

    // Assess
    expect(manifest.digest).toBe(image.digest);
    expect(tags).toEqual(['v1']);
    expect(client.tokenRequests).toBe(0);
  });

  it('sends credentials up front once the registry asked for Basic',
    async () => {
      // Prepare
      const client = clientOf(registry, registry.credentials);
      await client.headManifest('team/app', 'v1');
      await registry.resetRequests();

      // Act
      await client.headManifest('team/app', 'v1');
      await client.headBlob('team/app', image.layers![0]!.digest);

      // Assess
      const requests = await registry.requests();
      expect(requests.map((r) => r.status)).toEqual([200, 200]);
    });

  it('refuses a wrong password with an AuthenticationError without it',
    async () => {
      // Prepare
      const password = 'not-the-password-77e1';
      const client = clientOf(registry,
        { username: registry.credentials.username, password });

      // Act
      const error = await client.headManifest('team/app', 'v1')
        .catch((e: unknown) => e);

      // Assess
      expect(error).toBeInstanceOf(AuthenticationError);
      const failure = error as AuthenticationError;
      expect(failure.message).toContain(registry.host);
      expect(failure.hint).toContain('docker login');
      expect(`${failure.message} ${failure.hint} ${failure.stack}`)
        .not.toContain(password);
    });
});

describe('RegistryClient against an unreachable registry', () => {
  it('gives up after its attempts with a TransientError saying ' +
    'unreachable', async () => {
    // Prepare
    const port = await freePort();
    const client = clientOf({ host: `127.0.0.1:${port}` }, undefined,
      { attempts: 2 });

    // Act
    const error = await client.headManifest('team/app', 'v1')
      .catch((e: unknown) => e);

    // Assess
    expect(error).toBeInstanceOf(TransientError);
    expect((error as Error).name).toBe('TransientError');
    expect((error as Error).message)
      .toMatch(new RegExp(`127.0.0.1:${port} is unreachable ` +
        '\\(ECONNREFUSED\\) after 2 attempts'));
  });
});

describe('RegistryClient through a proxy', () => {
  let registry: TestRegistry;
  let proxy: TestProxy;

  beforeAll(async () => {
    registry = await startRegistry({ auth: 'htpasswd' });
    await pushFixture(image, registry, 'team/app:v1');
    proxy = await startProxy(registry);
  });

  it('names the registry, repository and status when the registry ' +
    'denies access (403)', async () => {
    // Prepare
    const client = clientOf(proxy, registry.credentials);
    proxy.failNext(1, { status: 403 });

    // Act
    const error = await client.getManifest('team/app', 'v1')
      .catch((e: unknown) => e);

    // Assess
    expect(error).toBeInstanceOf(AuthenticationError);
    expect((error as AuthenticationError).status).toBe(403);
    expect((error as Error).message)
      .toContain(`${proxy.host}/team/app:v1`);
  });
});
