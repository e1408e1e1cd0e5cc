// Image references and registry addresses as users write them.
//
//   [http://]HOST[:PORT]/REPOSITORY(:TAG|@DIGEST)   an image
//   [http://]HOST[:PORT][/PATH]                     a registry (a target)
//
// `http://` marks a plain-HTTP registry; anything else is HTTPS. The host is
// always written out: there is no implicit Docker Hub.

import { digestProblem } from './digest.js';
import { ReferenceInvalidError } from './errors.js';
import type { ImageReference, RegistryEndpoint } from './types.js';

/** A registry and a repository prefix under it (`''` for none). */
export interface RegistryLocation {
  registry: RegistryEndpoint;
  path: string;
}

export interface ParseImageOptions {
  /** Accept a reference with neither tag nor digest. Default false. */
  allowBare?: boolean;
}

const LABEL = /^(?:[a-z0-9]|[a-z0-9][a-z0-9-]*[a-z0-9])$/;
const IPV6 = /^\[[0-9a-f:.]+\]$/;
const PATH_COMPONENT = /^[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*$/;
const TAG = /^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$/;
const MAX_NAME_LENGTH = 255;

/** Docker Hub's API lives on another host than its name. */
const DOCKER_HUB_NAMES = new Set(['docker.io', 'index.docker.io']);
const DOCKER_HUB_API = 'registry-1.docker.io';

/** Parses `[http://]HOST[:PORT]/REPOSITORY(:TAG|@DIGEST)`. */
export function parseImageReference(text: string,
  options: ParseImageOptions = {}): ImageReference {
  const { scheme, rest } = splitScheme(text);
  const slash = rest.indexOf('/');
  if (slash < 0) {
    throw new ReferenceInvalidError(text, 'missing repository',
      'write HOST/REPOSITORY:TAG, e.g. ghcr.io/org/app:1.0');
  }

  const host = parseHost(text, rest.slice(0, slash));
  let name = rest.slice(slash + 1);

  // the digest follows the last `@`, the tag the last `:` after the last `/`
  let digest: string | undefined;
  const at = name.lastIndexOf('@');
  if (at >= 0) {
    digest = name.slice(at + 1);
    name = name.slice(0, at);
    const problem = digestProblem(digest);
    if (problem) throw new ReferenceInvalidError(text, problem);
  }

  let tag: string | undefined;
  const colon = name.lastIndexOf(':');
  if (colon > name.lastIndexOf('/')) {
    tag = name.slice(colon + 1);
    name = name.slice(0, colon);
    if (!TAG.test(tag)) {
      throw new ReferenceInvalidError(text, `invalid tag "${tag}"`,
        'a tag is up to 128 letters, digits, "_", "." and "-", and does ' +
        'not start with "." or "-"');
    }
  }

  let repository = checkRepository(text, name);
  if (!tag && !digest && !options.allowBare) {
    throw new ReferenceInvalidError(text, 'missing tag or digest',
      `write ${host}/${repository}:TAG or ${host}/${repository}@sha256:...`);
  }

  // Docker Hub's official images live under library/
  const registry = endpoint(scheme, host);
  if (registry.host === DOCKER_HUB_API && !repository.includes('/')) {
    repository = `library/${repository}`;
  }

  return { registry, repository, tag, digest };
}

/** Parses `[http://]HOST[:PORT][/PATH]`, a registry with an optional path. */
export function parseRegistryLocation(text: string): RegistryLocation {
  const { scheme, rest } = splitScheme(text);
  const trimmed = rest.replace(/\/+$/, '');
  const slash = trimmed.indexOf('/');
  const host = parseHost(text, slash < 0 ? trimmed : trimmed.slice(0, slash));
  const path = slash < 0 ? '' : checkRepository(text, trimmed.slice(slash + 1));

  return { registry: endpoint(scheme, host), path };
}

/** Parses `[http://]HOST[:PORT]`, a registry alone. */
export function parseRegistry(text: string): RegistryEndpoint {
  const location = parseRegistryLocation(text);
  if (location.path) {
    throw new ReferenceInvalidError(text, 'expected a registry without a ' +
      'path', 'write HOST or HOST:PORT, with http:// for plain HTTP');
  }
  return location.registry;
}

/** The text form of a reference, as `parseImageReference` reads it. */
export function formatImageReference(reference: ImageReference): string {
  let text = `${formatRegistry(reference.registry)}/${reference.repository}`;
  if (reference.tag) text += `:${reference.tag}`;
  if (reference.digest) text += `@${reference.digest}`;
  return text;
}

/** `host[:port]`, with `http://` for plain-HTTP registries. */
export function formatRegistry(registry: RegistryEndpoint): string {
  return registry.scheme === 'http' ? `http://${registry.host}` : registry.host;
}

/** The base URL of a registry's API: `https://host[:port]`. */
export function registryOrigin(registry: RegistryEndpoint): string {
  return `${registry.scheme}://${registry.host}`;
}

function splitScheme(text: string):
  { scheme: RegistryEndpoint['scheme']; rest: string } {
  const match = /^([a-zA-Z][a-zA-Z0-9+.-]*):\/\//.exec(text);
  if (!match) return { scheme: 'https', rest: text };

  const scheme = match[1]!.toLowerCase();
  if (scheme !== 'http' && scheme !== 'https') {
    throw new ReferenceInvalidError(text, `unsupported scheme "${scheme}"`,
      'use http:// for a plain-HTTP registry, or no scheme for HTTPS');
  }
  return { scheme, rest: text.slice(match[0].length) };
}

function parseHost(input: string, text: string): string {
  const host = text.toLowerCase();

  // the port follows the last `:`, outside an IPv6 literal's brackets
  const colon = host.lastIndexOf(':');
  const hasPort = colon > host.lastIndexOf(']');
  const name = hasPort ? host.slice(0, colon) : host;
  const portText = hasPort ? host.slice(colon + 1) : undefined;

  if (!name) throw new ReferenceInvalidError(input, 'missing registry host');

  if (portText !== undefined) {
    const port = Number(portText);
    if (!/^\d{1,5}$/.test(portText) || port < 1 || port > 65535) {
      throw new ReferenceInvalidError(input, `invalid port "${portText}"`);
    }
  }

  const isIpv6 = IPV6.test(name);
  const looksLikeHost = isIpv6 || name === 'localhost' ||
    name.includes('.') || portText !== undefined;
  if (!looksLikeHost) {
    throw new ReferenceInvalidError(input, `"${text}" is not a registry host`,
      'write the registry first, e.g. ghcr.io/org/app:1.0 or ' +
      'docker.io/library/alpine:3');
  }
  if (!isIpv6 && !name.split('.').every((label) => LABEL.test(label))) {
    throw new ReferenceInvalidError(input, `invalid registry host "${text}"`);
  }

  if (DOCKER_HUB_NAMES.has(name) && portText === undefined) {
    return DOCKER_HUB_API;
  }
  return host;
}

function checkRepository(input: string, name: string): string {
  if (!name) throw new ReferenceInvalidError(input, 'missing repository');

  if (name !== name.toLowerCase()) {
    throw new ReferenceInvalidError(input,
      `repository "${name}" has uppercase letters`,
      `repository names are lowercase: ${name.toLowerCase()}`);
  }

  for (const component of name.split('/')) {
    if (!PATH_COMPONENT.test(component)) {
      throw new ReferenceInvalidError(input,
        `invalid repository "${name}" (component "${component}")`,
        'each /-separated component is lowercase letters and digits, ' +
        'joined by ".", "_", "__" or dashes');
    }
  }

  if (name.length > MAX_NAME_LENGTH) {
    throw new ReferenceInvalidError(input,
      `repository name longer than ${MAX_NAME_LENGTH} characters`);
  }
  return name;
}

function endpoint(scheme: RegistryEndpoint['scheme'], host: string):
  RegistryEndpoint {
  return { host, scheme };
}
