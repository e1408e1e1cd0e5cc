// Checks that the system programs the tests drive are installed.
//
// Tests never skip for a missing program: they fail, and the message says
// exactly how to install it.

import { accessSync, constants } from 'node:fs';
import { delimiter, join } from 'node:path';

/** Program name -> Debian package that provides it. */
export const REQUIRED_BINARIES = {
  'docker-registry': 'docker-registry',
  skopeo: 'skopeo',
  htpasswd: 'apache2-utils',
  openssl: 'openssl',
} as const;

export type RequiredBinary = keyof typeof REQUIRED_BINARIES;

/** The command that installs every program the tests need. */
export const INSTALL_COMMAND =
  'apt-get update && apt-get install -y ' +
  'docker-registry skopeo apache2-utils openssl';

/** The absolute path of an executable on PATH, or undefined. */
export function findBinary(name: string): string | undefined {
  const dirs = (process.env.PATH ?? '').split(delimiter).filter(Boolean);

  // /usr/sbin and /usr/bin hold the Debian packages even when PATH is thin
  for (const dir of [...dirs, '/usr/bin', '/usr/sbin']) {
    const path = join(dir, name);
    try {
      accessSync(path, constants.X_OK);
      return path;
    } catch {
      continue;
    }
  }
  return undefined;
}

/**
 * Throws when any of `names` is not installed, naming the missing programs
 * and the apt-get command that installs them.
 */
export function requireBinaries(
  names: readonly RequiredBinary[] = Object.keys(
    REQUIRED_BINARIES) as RequiredBinary[],
  find: (name: string) => string | undefined = findBinary,
): void {
  const missing = names.filter((name) => !find(name));
  if (missing.length === 0) return;

  const packages = [...new Set(missing.map((n) => REQUIRED_BINARIES[n]))];
  throw new Error(
    `missing program(s) the tests need: ${missing.join(', ')}.\n` +
    `Install them with: sudo apt-get update && ` +
    `sudo apt-get install -y ${packages.join(' ')}\n` +
    `(everything the tests use: ${INSTALL_COMMAND})`,
  );
}
