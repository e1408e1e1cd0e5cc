import {
  CreateRepositoryCommand,
  DescribeRepositoriesCommand,
  ECRClient,
  GetAuthorizationTokenCommand,
  RepositoryAlreadyExistsException,
  RepositoryNotFoundException,
} from '@aws-sdk/client-ecr';
import { mockClient } from 'aws-sdk-client-mock';
import { afterAll, beforeEach, describe, expect, it } from 'vitest';

import {
  EcrRepositories,
  TOKEN_RENEWAL_MARGIN_MS,
  ecrCredentialProvider,
  parseEcrHost,
} from '../functions/lib/aws/ecr.js';
import { RegistryClient } from '../functions/lib/registry/client.js';
import { staticCredentials } from '../functions/lib/registry/credentials.js';
import { ECR_UPLOADS } from '../functions/lib/run/registries.js';
import {
  createLayout, pushFixture, requireBinaries, startProxy, startRegistry,
  stopAll,
} from './harness/index.js';

const HOST = '123456789012.dkr.ecr.eu-west-1.amazonaws.com';
const HOUR = 3600 * 1000;

const ecr = mockClient(ECRClient);

function token(password: string, expiresAt: number) {
  return {
    authorizationData: [{
      authorizationToken:
        Buffer.from(`AWS:${password}`).toString('base64'),
      expiresAt: new Date(expiresAt),
      proxyEndpoint: `https://${HOST}`,
    }],
  };
}

function notFound() {
  return new RepositoryNotFoundException({
    message: 'repository does not exist', $metadata: {},
  });
}

describe('parseEcrHost', () => {
  it('reads the account and region of an ECR registry host', () => {
    expect(parseEcrHost(HOST)).toEqual({
      host: HOST, account: '123456789012', region: 'eu-west-1',
    });
  });

  it('accepts a port, upper case, FIPS and China endpoints', () => {
    expect(parseEcrHost(`${HOST.toUpperCase()}:443`)?.region)
      .toBe('eu-west-1');
    expect(parseEcrHost(
      '123456789012.dkr.ecr-fips.us-gov-west-1.amazonaws.com')?.region)
      .toBe('us-gov-west-1');
    expect(parseEcrHost(
      '123456789012.dkr.ecr.cn-north-1.amazonaws.com.cn')?.account)
      .toBe('123456789012');
  });

  it('returns undefined for registries that are not ECR', () => {
    for (const host of ['ghcr.io', '127.0.0.1:5000',
      'public.ecr.aws', '12345.dkr.ecr.eu-west-1.amazonaws.com',
      `${HOST}.evil.example`]) {
      expect(parseEcrHost(host), host).toBeUndefined();
    }
  });
});

describe('ecrCredentialProvider', () => {
  let clock: number;
  const options = () => ({
    clientFor: () => new ECRClient({ region: 'eu-west-1' }),
    now: () => clock,
  });

  beforeEach(() => {
    ecr.reset();
    clock = Date.parse('2030-01-01T00:00:00Z');
  });

  it('decodes the authorization token into AWS and a password', async () => {
    ecr.on(GetAuthorizationTokenCommand)
      .resolves(token('pa:ss=word', clock + 12 * HOUR));

    const credentials = await ecrCredentialProvider(options())(HOST);

    expect(credentials).toEqual({ username: 'AWS', password: 'pa:ss=word' });
  });

  it('asks ECR once while the token is valid, then again near its expiry',
    async () => {
      ecr.on(GetAuthorizationTokenCommand)
        .resolvesOnce(token('first', clock + 12 * HOUR))
        .resolvesOnce(token('second', clock + 24 * HOUR));
      const provide = ecrCredentialProvider(options());

      const a = await provide(HOST);
      clock += 12 * HOUR - TOKEN_RENEWAL_MARGIN_MS - 1;
      const b = await provide(HOST);
      clock += 2;
      const c = await provide(HOST);

      expect([a, b, c].map((x) => x && 'password' in x && x.password))
        .toEqual(['first', 'first', 'second']);
      expect(ecr.commandCalls(GetAuthorizationTokenCommand)).toHaveLength(2);
    });

  it('shares one request among concurrent callers', async () => {
    ecr.on(GetAuthorizationTokenCommand)
      .resolves(token('shared', clock + 12 * HOUR));
    const provide = ecrCredentialProvider(options());

    await Promise.all([provide(HOST), provide(HOST), provide(HOST)]);

    expect(ecr.commandCalls(GetAuthorizationTokenCommand)).toHaveLength(1);
  });

  it('does not remember a failure: the next call asks again', async () => {
    ecr.on(GetAuthorizationTokenCommand)
      .rejectsOnce(Object.assign(new Error('slow down'),
        { name: 'ThrottlingException', $fault: 'client' }))
      .resolves(token('later', clock + 12 * HOUR));
    const provide = ecrCredentialProvider(options());

    await expect(provide(HOST)).rejects.toMatchObject({
      name: 'TransientError',
    });
    expect(await provide(HOST)).toMatchObject({ password: 'later' });
  });

  it('reports a denied request as an AuthenticationError naming the action',
    async () => {
      ecr.on(GetAuthorizationTokenCommand).rejects(Object.assign(
        new Error('not authorized'), {
          name: 'AccessDeniedException', $metadata: { httpStatusCode: 400 },
        }));

      const failure = await ecrCredentialProvider(options())(HOST)
        .catch((error: unknown) => error);

      expect(failure).toMatchObject({ name: 'AuthenticationError' });
      expect((failure as { hint: string }).hint)
        .toContain('ecr:GetAuthorizationToken');
    });

  it('passes other hosts to the fallback without calling ECR', async () => {
    const provide = ecrCredentialProvider({
      ...options(),
      fallback: async (host) => host === 'ghcr.io'
        ? { username: 'x', password: 'gh' } : undefined,
    });

    expect(await provide('ghcr.io')).toEqual({ username: 'x', password: 'gh' });
    expect(await provide('127.0.0.1:5000')).toBeUndefined();
    expect(ecr.commandCalls(GetAuthorizationTokenCommand)).toHaveLength(0);
  });
});

describe('EcrRepositories.ensureRepository', () => {
  const repositories = () => new EcrRepositories(HOST, {
    clientFor: () => new ECRClient({ region: 'eu-west-1' }),
  });

  beforeEach(() => ecr.reset());

  it('creates a repository ECR does not know, with mutable tags',
    async () => {
      ecr.on(DescribeRepositoriesCommand).rejects(notFound());
      ecr.on(CreateRepositoryCommand).resolves({});

      const state = await repositories().ensureRepository('backup/app');

      expect(state).toBe('created');
      expect(ecr.commandCalls(CreateRepositoryCommand)[0]!.args[0].input)
        .toEqual({
          registryId: '123456789012', repositoryName: 'backup/app',
          imageTagMutability: 'MUTABLE',
        });
    });

  it('leaves an existing repository alone', async () => {
    ecr.on(DescribeRepositoriesCommand).resolves({ repositories: [{}] });

    const state = await repositories().ensureRepository('backup/app');

    expect(state).toBe('existing');
    expect(ecr.commandCalls(CreateRepositoryCommand)).toHaveLength(0);
  });

  it('creates nothing when the lookup fails for another reason',
    async () => {
      ecr.on(DescribeRepositoriesCommand).rejects(Object.assign(
        new Error('denied'), { name: 'AccessDeniedException' }));

      await expect(repositories().ensureRepository('backup/app'))
        .rejects.toMatchObject({ name: 'AuthenticationError' });
      expect(ecr.commandCalls(CreateRepositoryCommand)).toHaveLength(0);
    });

  it('treats a repository created meanwhile by another copy as existing',
    async () => {
      ecr.on(DescribeRepositoriesCommand).rejects(notFound());
      ecr.on(CreateRepositoryCommand).rejects(
        new RepositoryAlreadyExistsException({ message: 'exists',
          $metadata: {} }));

      expect(await repositories().ensureRepository('backup/app'))
        .toBe('existing');
    });

  it('looks each name up once per process', async () => {
    ecr.on(DescribeRepositoriesCommand).resolves({ repositories: [{}] });
    const target = repositories();

    await Promise.all([target.ensureRepository('a'),
      target.ensureRepository('a'), target.ensureRepository('b')]);
    await target.ensureRepository('a');

    expect(ecr.commandCalls(DescribeRepositoriesCommand)).toHaveLength(2);
  });

  it('refuses a host that is not ECR', () => {
    expect(() => new EcrRepositories('ghcr.io'))
      .toThrow(/not an Amazon ECR registry/);
  });
});

describe('uploads to ECR', () => {
  afterAll(stopAll);

  it('send a blob larger than ECR\'s 5 MiB part minimum in one PUT',
    async () => {
      // Prepare: a 6 MiB layer, read from one repository of a registry
      // and pushed to another through a proxy that sees every request
      requireBinaries();
      const layout = await createLayout();
      const image = await layout.image({ layerSizes: [6 * 1024 * 1024] });
      const layer = image.layers![0]!;
      const registry = await startRegistry({ auth: 'htpasswd',
        name: 'ecr-like' });
      await pushFixture(image, registry, 'ghcr/app:v1');
      const proxy = await startProxy(registry);
      const client = new RegistryClient({
        endpoint: { host: proxy.host, scheme: 'http' },
        credentials: staticCredentials({
          [proxy.host]: registry.credentials }),
        ...ECR_UPLOADS,
      });

      // Act
      const outcome = await client.pushBlob('backup/app', layer,
        { registry: client, repository: 'ghcr/app' });

      // Assess: no PATCH, one PUT with the whole blob and its digest
      expect(outcome).toEqual({ action: 'uploaded', bytes: layer.size });
      const uploads = proxy.requests().filter((r) =>
        r.url.includes('/backup/app/blobs/uploads/') && r.status !== 401);
      expect(uploads.map((r) => r.method)).toEqual(['POST', 'PUT']);
      expect(uploads[1]!.headers['content-length'])
        .toBe(String(layer.size));
      expect(uploads[1]!.url).toContain(
        `digest=${encodeURIComponent(layer.digest)}`);
      expect(await client.headBlob('backup/app', layer.digest))
        .toMatchObject({ size: layer.size });
    });
});
