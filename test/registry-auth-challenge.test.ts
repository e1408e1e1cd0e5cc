import { describe, expect, it } from 'vitest';

import { parseChallenges, repositoryScope }
  from '../functions/lib/registry/auth.js';
import { parseRetryAfter } from '../functions/lib/registry/retry.js';

describe('parseChallenges', () => {
  it('reads a Bearer challenge with realm, service and scope', () => {
    const header = 'Bearer realm="https://ghcr.io/token",' +
      'service="ghcr.io",scope="repository:org/app:pull"';

    expect(parseChallenges(header)).toEqual([{
      scheme: 'bearer',
      params: {
        realm: 'https://ghcr.io/token', service: 'ghcr.io',
        scope: 'repository:org/app:pull',
      },
    }]);
  });

  it('keeps commas inside quoted values (a scope with two actions)', () => {
    const header = 'Bearer realm="http://127.0.0.1:1/token",' +
      'scope="repository:a:pull,push",error="insufficient_scope"';

    expect(parseChallenges(header)[0]!.params).toEqual({
      realm: 'http://127.0.0.1:1/token', scope: 'repository:a:pull,push',
      error: 'insufficient_scope',
    });
  });

  it('reads several challenges in one header, and unquoted values', () => {
    const header = 'Basic realm="Registry Realm", ' +
      'Bearer realm=https://auth.example/token, service=example';

    expect(parseChallenges(header)).toEqual([
      { scheme: 'basic', params: { realm: 'Registry Realm' } },
      { scheme: 'bearer', params: {
        realm: 'https://auth.example/token', service: 'example' } },
    ]);
  });

  it('unescapes backslashes in quoted strings and lowercases names', () => {
    const header = 'BEARER Realm="a\\"b", SERVICE = "s"';

    expect(parseChallenges(header)).toEqual([
      { scheme: 'bearer', params: { realm: 'a"b', service: 's' } },
    ]);
  });

  it('returns no challenge for an empty header', () => {
    expect(parseChallenges('')).toEqual([]);
  });
});

describe('repositoryScope', () => {
  it('writes the distribution scope syntax', () => {
    expect(repositoryScope('org/app', ['pull', 'push']))
      .toBe('repository:org/app:pull,push');
  });
});

describe('parseRetryAfter', () => {
  it('reads seconds and HTTP dates', () => {
    const now = Date.parse('2026-01-01T00:00:00Z');

    expect(parseRetryAfter('3', now)).toBe(3000);
    expect(parseRetryAfter('Thu, 01 Jan 2026 00:00:02 GMT', now)).toBe(2000);
    expect(parseRetryAfter('Wed, 31 Dec 2025 23:00:00 GMT', now)).toBe(0);
    expect(parseRetryAfter('soon', now)).toBeUndefined();
    expect(parseRetryAfter(null, now)).toBeUndefined();
  });
});
