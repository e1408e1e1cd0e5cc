// A GitHub REST API of our own for tests: the packages endpoints of
// organisations and users, with GitHub's response shapes, Link pagination,
// token scopes and its error bodies, served from a fixture that tests may
// change between runs (move a tag, delete a version).
//
// What it mimics, from GitHub's REST reference and its observed answers:
// - per_page defaults to 30 and is capped (100 on GitHub); `Link` names
//   prev, next, last and first pages like GitHub does, and for an org or a
//   user account points at `/organizations/ID/...` or `/user/ID/...`, so a
//   client must follow the links rather than rebuild URLs.
// - `/users/NAME/packages` shows visitors public packages only, and
//   `/users/NAME/packages/container/P/versions` serves public packages only;
//   `/user/packages...` serves the token owner's packages of every
//   visibility.
// - Path segments are percent-decoded one by one, so a package name with a
//   `/` is found only when the client sends it as %2F.

import { createServer, type IncomingMessage, type Server,
  type ServerResponse } from 'node:http';

import { listenOnLoopback } from './process.js';

export interface FixtureVersion {
  /** The manifest digest, which GitHub lists as the version's name. */
  digest: string;
  tags: string[];
  id?: number;
  createdAt?: string;
  updatedAt?: string;
}

export interface FixturePackage {
  name: string;
  /** @default 'public' */
  visibility?: 'public' | 'private' | 'internal';
  /** Served in this order (GitHub lists the newest first). */
  versions: FixtureVersion[];
  id?: number;
}

export interface GitHubFixture {
  owner: string;
  kind: 'org' | 'user';
  id?: number;
  packages: FixturePackage[];
}

/** What a token is: whose it is and which OAuth scopes it carries. */
export interface TokenGrant {
  login: string;
  scopes: string[];
}

/** An answer served instead of the real one; 'disconnect' drops the
 * connection without answering. */
export type InjectedFailure =
  | { status: number; headers?: Record<string, string>; body?: unknown }
  | 'disconnect';

export interface GitHubApiOptions {
  fixtures: GitHubFixture | GitHubFixture[];
  /** @default { [DEFAULT_TOKEN]: { login: 'octocat', scopes:
   * ['read:packages', 'repo'] } } */
  tokens?: Record<string, TokenGrant>;
  /** The largest page served. @default 100 (as GitHub) */
  maxPerPage?: number;
  /** A path before every route, e.g. '/api/v3' as on GitHub Enterprise
   * Server. @default '' */
  basePath?: string;
}

export interface RecordedRequest {
  method: string;
  /** The path and query as received (percent-encoding kept). */
  url: string;
}

/** A classic token's look, so tests can check that it is never printed. */
export const DEFAULT_TOKEN = 'ghp_TestTokenForTheGitHubApiHarness0001';

const DOCS = 'https://docs.github.com/rest/packages/packages';
const EPOCH = Date.UTC(2024, 0, 1);

/** A secondary rate limit answer, asking to retry after `seconds`. */
export function secondaryRateLimit(seconds = 0): InjectedFailure {
  return {
    status: 403,
    headers: { 'retry-after': String(seconds) },
    body: {
      message: 'You have exceeded a secondary rate limit. Please wait a few '
        + 'minutes before you try again.',
      documentation_url: 'https://docs.github.com/rest/overview/'
        + 'rate-limits-for-the-rest-api',
      status: '403',
    },
  };
}

/** A primary rate limit answer: none left until `resetAt` (epoch ms). */
export function primaryRateLimit(resetAt: number): InjectedFailure {
  return {
    status: 403,
    headers: {
      'x-ratelimit-limit': '5000', 'x-ratelimit-remaining': '0',
      'x-ratelimit-used': '5000', 'x-ratelimit-resource': 'core',
      'x-ratelimit-reset': String(Math.ceil(resetAt / 1000)),
    },
    body: {
      message: 'API rate limit exceeded for user ID 1.',
      documentation_url: 'https://docs.github.com/rest/overview/'
        + 'rate-limits-for-the-rest-api',
      status: '403',
    },
  };
}

export class GitHubApi {
  /** The API root to give a client as its base URL. */
  readonly url: string;
  /** Served live: change it between runs. */
  fixtures: GitHubFixture[];
  readonly requests: RecordedRequest[] = [];

  readonly #server: Server;
  readonly #tokens: Record<string, TokenGrant>;
  readonly #maxPerPage: number;
  readonly #basePath: string;
  readonly #failures: { failure: InjectedFailure;
    match?: string | RegExp }[] = [];
  readonly #ids = new WeakMap<object, number>();
  #nextId = 1000;

  constructor(server: Server, url: string, options: GitHubApiOptions) {
    this.#server = server;
    this.url = url;
    this.fixtures = [options.fixtures].flat();
    this.#tokens = options.tokens ?? {
      [DEFAULT_TOKEN]: { login: 'octocat', scopes: ['read:packages', 'repo'] },
    };
    this.#maxPerPage = options.maxPerPage ?? 100;
    this.#basePath = (options.basePath ?? '').replace(/\/+$/, '');
  }

  /** Requests received whose path and query match, or all of them. */
  count(match?: string | RegExp): number {
    return this.requests.filter((request) => matches(request.url, match))
      .length;
  }

  /**
   * Serves `failure` instead of the next `times` answers (default 1) to
   * requests whose path and query match `match` (default: any).
   */
  failNext(failure: InjectedFailure,
    options: { times?: number; match?: string | RegExp } = {}): void {
    for (let i = 0; i < (options.times ?? 1); i += 1) {
      this.#failures.push({ failure, match: options.match });
    }
  }

  /** The fixture of `owner`, or the only one. */
  fixture(owner?: string): GitHubFixture {
    const found = owner === undefined && this.fixtures.length === 1
      ? this.fixtures[0]
      : this.fixtures.find((item) => same(item.owner, owner ?? ''));
    if (found === undefined) throw new Error(`no fixture for ${owner}`);

    return found;
  }

  /** The package `name` of `owner` (or of the only fixture). */
  package(name: string, owner?: string): FixturePackage {
    const found = this.fixture(owner).packages
      .find((item) => item.name === name);
    if (found === undefined) throw new Error(`no package ${name}`);

    return found;
  }

  /** Points `tag` at `digest`, adding the version first when new. */
  moveTag(packageName: string, tag: string, digest: string,
    owner?: string): void {
    const pkg = this.package(packageName, owner);
    for (const version of pkg.versions) {
      version.tags = version.tags.filter((item) => item !== tag);
    }

    const target = pkg.versions.find((version) => version.digest === digest);
    if (target === undefined) {
      pkg.versions.unshift({ digest, tags: [tag] });
    } else {
      target.tags.push(tag);
    }
  }

  /** Deletes the version `digest`, and with it its tags. */
  deleteVersion(packageName: string, digest: string, owner?: string): void {
    const pkg = this.package(packageName, owner);
    pkg.versions = pkg.versions.filter((version) => version.digest !== digest);
  }

  close(): Promise<void> {
    this.#server.closeAllConnections();

    return new Promise((resolve, reject) => {
      this.#server.close((error) => (error ? reject(error) : resolve()));
    });
  }

  /** Handles one request. */
  serve(request: IncomingMessage, response: ServerResponse): void {
    const raw = request.url ?? '/';
    this.requests.push({ method: request.method ?? 'GET', url: raw });

    const index = this.#failures.findIndex(({ match }) =>
      matches(raw, match));
    const failure = index === -1
      ? undefined
      : this.#failures.splice(index, 1)[0]?.failure;
    if (failure === 'disconnect') {
      request.socket.destroy();

      return;
    }
    if (failure !== undefined) {
      send(response, failure.status, failure.body ?? '', failure.headers);

      return;
    }

    const url = new URL(raw, this.url);
    if (!url.pathname.startsWith(`${this.#basePath}/`)
      || request.method !== 'GET') {
      return notFound(response);
    }

    // split before decoding: an encoded slash stays inside its segment
    const segments = url.pathname.slice(this.#basePath.length + 1)
      .split('/').map((segment) => decodeURIComponent(segment));

    const grant = this.#authenticate(request, response);
    if (grant === undefined) return;

    const scopes = { 'x-oauth-scopes': grant.scopes.join(', ') };
    if (segments.length === 1 && segments[0] === 'user') {
      return send(response, 200, this.#user(grant.login), scopes);
    }

    const route = this.#route(segments, grant);
    if (route === undefined) return notFound(response, scopes);

    const accepted = { ...scopes, 'x-accepted-oauth-scopes': 'read:packages' };
    if (!grant.scopes.some((scope) => /^(read|write|delete):packages$/
      .test(scope))) {
      return send(response, 403, {
        message: 'You need at least read:packages scope to list packages.',
        documentation_url: DOCS, status: '403',
      }, accepted);
    }

    if (route.fixture === undefined) return notFound(response, accepted);

    if (route.packageName === undefined) {
      if (url.searchParams.get('package_type') !== 'container') {
        return send(response, 400, {
          message: 'package_type is invalid or missing',
          documentation_url: DOCS, status: '400',
        }, accepted);
      }

      const visible = route.fixture.packages.filter((pkg) =>
        route.fixture?.kind === 'org' || route.self
        || same(route.fixture?.owner ?? '', grant.login)
        || (pkg.visibility ?? 'public') === 'public');

      return this.#page(response, url, route.linkPath, accepted,
        visible.map((pkg) => this.#packageObject(route.fixture!, pkg)));
    }

    const pkg = route.fixture.packages
      .find((item) => item.name === route.packageName);
    // the users' versions endpoint serves public packages only
    const hidden = route.fixture.kind === 'user' && !route.self
      && (pkg?.visibility ?? 'public') !== 'public';
    if (pkg === undefined || hidden) {
      return send(response, 404, {
        message: 'Package not found.', documentation_url: DOCS,
        status: '404',
      }, accepted);
    }

    return this.#page(response, url, route.linkPath, accepted,
      pkg.versions.map((version) =>
        this.#versionObject(route.fixture!, pkg, version)));
  }

  #authenticate(request: IncomingMessage,
    response: ServerResponse): TokenGrant | undefined {
    const header = request.headers.authorization;
    if (header === undefined) {
      send(response, 401, {
        message: 'Requires authentication',
        documentation_url: 'https://docs.github.com/rest', status: '401',
      });

      return undefined;
    }

    const token = header.replace(/^(token|bearer)\s+/i, '');
    const grant = this.#tokens[token];
    if (grant === undefined) {
      send(response, 401, {
        message: 'Bad credentials',
        documentation_url: 'https://docs.github.com/rest', status: '401',
      });
    }

    return grant;
  }

  /**
   * Which fixture and package a packages path names, and the path its
   * Link headers point at; undefined when it is no packages route.
   */
  #route(segments: string[], grant: TokenGrant): {
    fixture?: GitHubFixture; self: boolean; packageName?: string;
    linkPath: string;
  } | undefined {
    const [root, owner, ...rest] = segments;
    let fixture: GitHubFixture | undefined;
    let self = false;
    let tail: string[];

    if (root === 'user' && owner === 'packages') {
      fixture = this.fixtures.find((item) => item.kind === 'user'
        && same(item.owner, grant.login));
      self = true;
      tail = [owner, ...rest];
    } else if (root === 'orgs' || root === 'users') {
      const kind = root === 'orgs' ? 'org' : 'user';
      fixture = this.fixtures.find((item) => item.kind === kind
        && same(item.owner, owner ?? ''));
      tail = rest;
    } else if (root === 'organizations' || root === 'user') {
      const kind = root === 'organizations' ? 'org' : 'user';
      fixture = this.fixtures.find((item) => item.kind === kind
        && String(this.#id(item)) === owner);
      tail = rest;
    } else {
      return undefined;
    }

    const prefix = self
      ? 'user'
      : `${fixture?.kind === 'org' ? 'organizations' : 'user'}/`
        + (fixture === undefined ? owner : this.#id(fixture));

    if (tail.length === 1 && tail[0] === 'packages') {
      return { fixture, self, linkPath: `${prefix}/packages` };
    }

    const [packages, type, name, versions] = tail;
    if (tail.length === 4 && packages === 'packages'
      && type === 'container' && versions === 'versions'
      && name !== undefined) {
      return {
        fixture, self, packageName: name,
        linkPath: `${prefix}/packages/container/`
          + `${encodeURIComponent(name)}/versions`,
      };
    }

    return undefined;
  }

  #page(response: ServerResponse, url: URL, linkPath: string,
    headers: Record<string, string>, items: unknown[]): void {
    const perPage = Math.min(this.#maxPerPage,
      positive(url.searchParams.get('per_page')) ?? 30);
    const page = positive(url.searchParams.get('page')) ?? 1;
    const last = Math.max(1, Math.ceil(items.length / perPage));

    const link = (target: number): string => {
      const query = new URLSearchParams(url.searchParams);
      query.set('page', String(target));

      return `<${this.url}${this.#basePath}/${linkPath}?${query}>`;
    };
    const links: string[] = [];
    if (page > 1) links.push(`${link(Math.min(page - 1, last))}; rel="prev"`);
    if (page < last) {
      links.push(`${link(page + 1)}; rel="next"`,
        `${link(last)}; rel="last"`);
    }
    if (page > 1) links.push(`${link(1)}; rel="first"`);

    send(response, 200, items.slice((page - 1) * perPage, page * perPage),
      links.length === 0 ? headers : { ...headers, link: links.join(', ') });
  }

  #id(item: object & { id?: number }): number {
    if (item.id !== undefined) return item.id;

    let id = this.#ids.get(item);
    if (id === undefined) {
      this.#nextId += 1;
      id = this.#nextId;
      this.#ids.set(item, id);
    }

    return id;
  }

  #user(login: string): Record<string, unknown> {
    const fixture = this.fixtures.find((item) => same(item.owner, login));

    return this.#owner(login, 'user',
      fixture === undefined ? 1 : this.#id(fixture));
  }

  #owner(login: string, kind: 'org' | 'user',
    id: number): Record<string, unknown> {
    return {
      login, id,
      node_id: Buffer.from(`04:${kind === 'org' ? 'Organization' : 'User'}`
        + `${id}`).toString('base64'),
      avatar_url: `https://avatars.githubusercontent.com/u/${id}?v=4`,
      gravatar_id: '',
      url: `${this.url}${this.#basePath}/users/${login}`,
      html_url: `https://github.com/${login}`,
      type: kind === 'org' ? 'Organization' : 'User',
      site_admin: false,
    };
  }

  #packageUrls(fixture: GitHubFixture,
    pkg: FixturePackage): { url: string; html: string } {
    const space = fixture.kind === 'org' ? 'orgs' : 'users';
    const name = encodeURIComponent(pkg.name);

    return {
      url: `${this.url}${this.#basePath}/${space}/${fixture.owner}/packages/`
        + `container/${name}`,
      html: `https://github.com/${space}/${fixture.owner}/packages/container/`
        + `package/${name}`,
    };
  }

  #packageObject(fixture: GitHubFixture,
    pkg: FixturePackage): Record<string, unknown> {
    const urls = this.#packageUrls(fixture, pkg);
    const id = this.#id(pkg);

    return {
      id,
      name: pkg.name,
      package_type: 'container',
      owner: this.#owner(fixture.owner, fixture.kind, this.#id(fixture)),
      version_count: pkg.versions.length,
      visibility: pkg.visibility ?? 'public',
      url: urls.url,
      created_at: timestamp(id),
      updated_at: timestamp(id),
      html_url: urls.html,
    };
  }

  #versionObject(fixture: GitHubFixture, pkg: FixturePackage,
    version: FixtureVersion): Record<string, unknown> {
    const urls = this.#packageUrls(fixture, pkg);
    const id = this.#id(version);
    const space = fixture.kind === 'org' ? 'orgs' : 'users';

    return {
      id,
      name: version.digest,
      url: `${urls.url}/versions/${id}`,
      package_html_url: urls.html,
      created_at: version.createdAt ?? timestamp(id),
      updated_at: version.updatedAt ?? timestamp(id),
      html_url: `https://github.com/${space}/${fixture.owner}/packages/`
        + `container/${encodeURIComponent(pkg.name)}/${id}`,
      metadata: {
        package_type: 'container',
        container: { tags: [...version.tags] },
      },
    };
  }
}

/** Starts the API on 127.0.0.1, on a free port. */
export async function startGitHubApi(
  options: GitHubApiOptions): Promise<GitHubApi> {
  let api: GitHubApi | undefined;
  const server = createServer((request, response) => {
    api?.serve(request, response);
  });

  const port = await listenOnLoopback(server);
  api = new GitHubApi(server, `http://127.0.0.1:${port}`, options);

  return api;
}

function send(response: ServerResponse, status: number, body: unknown,
  headers: Record<string, string> = {}): void {
  const text = typeof body === 'string' ? body : JSON.stringify(body);
  response.writeHead(status, {
    'content-type': 'application/json; charset=utf-8',
    'x-github-api-version-selected': '2022-11-28',
    'x-ratelimit-limit': '5000',
    'x-ratelimit-remaining': '4999',
    'x-ratelimit-reset': String(Math.ceil(Date.now() / 1000) + 3600),
    'x-ratelimit-used': '1',
    'x-ratelimit-resource': 'core',
    ...headers,
  });
  response.end(text);
}

function notFound(response: ServerResponse,
  headers: Record<string, string> = {}): void {
  send(response, 404, {
    message: 'Not Found', documentation_url: 'https://docs.github.com/rest',
    status: '404',
  }, headers);
}

function positive(value: string | null): number | undefined {
  const number = Number(value);

  return value !== null && Number.isInteger(number) && number > 0
    ? number
    : undefined;
}

function matches(url: string, match: string | RegExp | undefined): boolean {
  if (match === undefined) return true;

  return typeof match === 'string' ? url.includes(match) : match.test(url);
}

function same(a: string, b: string): boolean {
  return a.toLowerCase() === b.toLowerCase();
}

function timestamp(id: number): string {
  return new Date(EPOCH + id * 1000).toISOString().replace('.000Z', 'Z');
}
