// The execution input, checked before anything is listed or copied.
//
// The input comes from a schedule, from the console's "Start execution"
// box, or from the CLI; a person may have typed it. Every problem is an
// InvalidInputError saying which field and what it should look like, and
// an unknown field is refused rather than ignored (a typo in "packages"
// would otherwise back up everything).

import { InvalidInputError } from '../errors.js';
import { parseRegistryLocation } from '../registry/reference.js';
import type { RegistryLocation } from '../registry/reference.js';
import type { ExecutionInput } from './types.js';

/** The input, validated, with its regular expressions compiled. */
export interface RunOptions {
  owner: { kind: 'org' | 'user'; name: string };
  target: RegistryLocation;
  /** The target as given, normalised: one spelling per target. */
  targetText: string;
  packages?: RegExp;
  excludeTags?: RegExp;
  allVersions: boolean;
  dryRun: boolean;
  concurrency: number;
  /** The input again, as JSON-safe values, for the run's record. */
  input: ExecutionInput;
}

export const DEFAULT_IMAGE_CONCURRENCY = 4;
export const MAX_IMAGE_CONCURRENCY = 64;

const FIELDS = ['org', 'user', 'target', 'packages', 'excludeTags',
  'allVersions', 'dryRun', 'concurrency'];

// GitHub logins: letters, digits and single hyphens, at most 39
const OWNER = /^[A-Za-z0-9](?:[A-Za-z0-9]|-(?=[A-Za-z0-9])){0,38}$/;

const EXAMPLE = '{"org": "my-org", "target": "registry.example.com/backup"}';

/** Checks an execution input; throws InvalidInputError naming the field. */
export function parseExecutionInput(raw: unknown): RunOptions {
  if (typeof raw !== 'object' || raw === null || Array.isArray(raw)) {
    throw invalid('the execution input must be a JSON object');
  }
  const value = raw as Record<string, unknown>;

  const unknown = Object.keys(value).filter((key) => !FIELDS.includes(key));
  if (unknown.length > 0) {
    throw invalid(`unknown field(s) in the execution input: ` +
      `${unknown.join(', ')}`, `the fields are ${FIELDS.join(', ')}`);
  }

  const org = optionalString(value, 'org');
  const user = optionalString(value, 'user');
  if ((org === undefined) === (user === undefined)) {
    throw invalid('give exactly one of "org" and "user"');
  }
  const kind = org !== undefined ? 'org' : 'user';
  const name = (org ?? user)!;
  if (!OWNER.test(name)) {
    throw invalid(`"${kind}" is not a GitHub account name: ${name}`,
      'account names are letters, digits and single hyphens, at most 39');
  }

  const targetText = optionalString(value, 'target');
  if (targetText === undefined) {
    throw invalid('"target" is missing',
      'give the registry (and optional path) the images go to, e.g. ' +
      '"registry.example.com/backup" or "http://127.0.0.1:5000"');
  }
  let target: RegistryLocation;
  try {
    target = parseRegistryLocation(targetText);
  } catch (error) {
    const reason = error instanceof Error ? error.message : String(error);
    throw invalid(`"target" is not [http://]HOST[:PORT][/PATH]: ${reason}`);
  }

  const packages = optionalRegExp(value, 'packages');
  const excludeTags = optionalRegExp(value, 'excludeTags');
  const allVersions = optionalBoolean(value, 'allVersions') ?? false;
  const dryRun = optionalBoolean(value, 'dryRun') ?? false;

  const concurrency = value.concurrency ?? DEFAULT_IMAGE_CONCURRENCY;
  if (typeof concurrency !== 'number' || !Number.isInteger(concurrency) ||
      concurrency < 1 || concurrency > MAX_IMAGE_CONCURRENCY) {
    throw invalid(`"concurrency" must be a whole number from 1 to ` +
      `${MAX_IMAGE_CONCURRENCY}, got ${JSON.stringify(value.concurrency)}`);
  }

  const input: ExecutionInput = {
    ...(kind === 'org' ? { org: name } : { user: name }),
    target: targetText,
    ...(packages ? { packages: packages.source } : {}),
    ...(excludeTags ? { excludeTags: excludeTags.source } : {}),
    allVersions, dryRun, concurrency,
  };

  return {
    owner: { kind, name },
    target,
    targetText: formatTarget(target),
    packages, excludeTags, allVersions, dryRun, concurrency, input,
  };
}

/** `[http://]host[:port][/path]`, the one spelling of a target. */
export function formatTarget(location: RegistryLocation): string {
  const scheme = location.registry.scheme === 'http' ? 'http://' : '';
  const path = location.path ? `/${location.path}` : '';
  return `${scheme}${location.registry.host}${path}`;
}

function optionalString(value: Record<string, unknown>, field: string):
  string | undefined {
  const item = value[field];
  if (item === undefined || item === null) return undefined;
  if (typeof item !== 'string' || item.trim() === '') {
    throw invalid(`"${field}" must be a non-empty string`);
  }
  return item.trim();
}

function optionalBoolean(value: Record<string, unknown>, field: string):
  boolean | undefined {
  const item = value[field];
  if (item === undefined || item === null) return undefined;
  if (typeof item !== 'boolean') {
    throw invalid(`"${field}" must be true or false, got ` +
      JSON.stringify(item));
  }
  return item;
}

function optionalRegExp(value: Record<string, unknown>, field: string):
  RegExp | undefined {
  const text = optionalString(value, field);
  if (text === undefined) return undefined;

  try {
    return new RegExp(text);
  } catch (error) {
    const reason = error instanceof Error ? error.message : String(error);
    throw invalid(`"${field}" is not a regular expression: ${reason}`);
  }
}

function invalid(message: string, hint?: string): InvalidInputError {
  return new InvalidInputError(message, {
    hint: hint ?? `an execution input looks like ${EXAMPLE}`,
  });
}
