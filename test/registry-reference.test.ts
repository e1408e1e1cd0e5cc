import { describe, expect, it } from 'vitest';

import { InvalidInputError } from '../functions/lib/errors.js';
import {
  formatImageReference, parseImageReference, parseRegistry,
  parseRegistryLocation,
} from '../functions/lib/registry/reference.js';

const DIGEST = `sha256:${'a1'.repeat(32)}`;

describe('parseImageReference', () => {
  it.each([
    ['ghcr.io/org/app:1.0',
      { host: 'ghcr.io', scheme: 'https', repository: 'org/app', tag: '1.0' }],
    ['http://127.0.0.1:5000/a/b/c:latest',
      { host: '127.0.0.1:5000', scheme: 'http', repository: 'a/b/c',
        tag: 'latest' }],
    ['https://registry.example.com/app@' + DIGEST,
      { host: 'registry.example.com', scheme: 'https', repository: 'app',
        digest: DIGEST }],
    ['localhost:5000/app:v1@' + DIGEST,
      { host: 'localhost:5000', scheme: 'https', repository: 'app',
        tag: 'v1', digest: DIGEST }],
    ['GHCR.io/org/my-app_x.y:Tag_1.2-rc',
      { host: 'ghcr.io', scheme: 'https', repository: 'org/my-app_x.y',
        tag: 'Tag_1.2-rc' }],
    ['[::1]:5000/app:1',
      { host: '[::1]:5000', scheme: 'https', repository: 'app', tag: '1' }],
  ])('parses %s', (text, expected) => {
    const parsed = parseImageReference(text);

    expect({
      host: parsed.registry.host, scheme: parsed.registry.scheme,
      repository: parsed.repository,
      ...(parsed.tag ? { tag: parsed.tag } : {}),
      ...(parsed.digest ? { digest: parsed.digest } : {}),
    }).toEqual(expected);
  });

  it('maps Docker Hub names to its API host and official images to library/',
    () => {
      const parsed = parseImageReference('docker.io/alpine:3');

      expect(parsed.registry.host).toBe('registry-1.docker.io');
      expect(parsed.repository).toBe('library/alpine');
    });

  it('formats a reference back to the text it was parsed from', () => {
    const text = `http://127.0.0.1:5000/org/app:1.0@${DIGEST}`;

    expect(formatImageReference(parseImageReference(text))).toBe(text);
  });

  it.each([
    ['ghcr.io/Org/App:1', /uppercase/],
    ['org/app:1', /not a registry host/],
    ['ghcr.io:1', /missing repository/],
    ['ghcr.io/org/app', /missing tag or digest/],
    ['ghcr.io/org/app:-bad', /invalid tag/],
    ['ghcr.io/org/app@sha256:abc', /64 lowercase hex/],
    ['ghcr.io/org/app@md5:' + 'a'.repeat(32), /unsupported digest algorithm/],
    ['ftp://ghcr.io/org/app:1', /unsupported scheme/],
    ['ghcr.io:99999/org/app:1', /invalid port/],
    ['ghcr.io/org//app:1', /invalid repository/],
    ['ghcr.io/org/-app:1', /invalid repository/],
    ['ghcr.io/org/app:' + 'x'.repeat(129), /invalid tag/],
  ])('rejects %s with a clear InvalidInputError', (text, message) => {
    const act = () => parseImageReference(text);

    expect(act).toThrow(InvalidInputError);
    expect(act).toThrow(message);
  });

  it('names the family InvalidInputError for workflow catches', () => {
    try {
      parseImageReference('nope');
      expect.unreachable();
    } catch (error) {
      expect((error as Error).name).toBe('InvalidInputError');
      expect((error as InvalidInputError).hint).toMatch(/HOST\/REPOSITORY/);
    }
  });

  it('accepts a bare repository when asked to', () => {
    const parsed = parseImageReference('ghcr.io/org/app', { allowBare: true });

    expect(parsed).toMatchObject({ repository: 'org/app' });
    expect(parsed.tag).toBeUndefined();
  });
});

describe('parseRegistryLocation', () => {
  it.each([
    ['ghcr.io', 'ghcr.io', 'https', ''],
    ['http://127.0.0.1:5000', '127.0.0.1:5000', 'http', ''],
    ['http://127.0.0.1:5000/', '127.0.0.1:5000', 'http', ''],
    ['123.dkr.ecr.eu-west-1.amazonaws.com/backup/ghcr',
      '123.dkr.ecr.eu-west-1.amazonaws.com', 'https', 'backup/ghcr'],
  ])('parses %s', (text, host, scheme, path) => {
    expect(parseRegistryLocation(text)).toEqual({
      registry: { host, scheme }, path,
    });
  });

  it('rejects an uppercase path and a path where a bare registry is wanted',
    () => {
      expect(() => parseRegistryLocation('ghcr.io/Backup'))
        .toThrow(/uppercase/);
      expect(() => parseRegistry('ghcr.io/backup'))
        .toThrow(/without a path/);
    });
});
