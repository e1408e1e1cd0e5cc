// skopeo as a baseline, with a blob-info cache of the benchmark's own.
//
// skopeo remembers where it has seen each blob (its blob-info cache) and
// mounts from there in later copies. Run as root it keeps that cache in
// /var/lib/containers/cache, so an earlier copy into the same target would
// turn the next one into a mount, and the machine's history would leak into
// the numbers. A non-zero "rootless" uid moves the cache under
// XDG_DATA_HOME, a folder the benchmark makes fresh and removes.

import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';

/**
 * The environment for skopeo calls that share the cache in `home` (reuse
 * the same `home` to keep what skopeo learnt, as a rerun would). `home`
 * must be a folder that only the benchmark uses.
 */
export async function skopeoEnv(home: string): Promise<NodeJS.ProcessEnv> {
  await mkdir(join(home, 'run'), { recursive: true });
  await mkdir(join(home, 'tmp'), { recursive: true });
  const authFile = join(home, 'auth.json');
  await writeFile(authFile, '{"auths":{}}\n');
  const registriesConf = join(home, 'registries.conf');
  await writeFile(registriesConf, 'unqualified-search-registries = []\n');

  return {
    PATH: process.env.PATH ?? '/usr/bin:/bin',
    HOME: home,
    TMPDIR: join(home, 'tmp'),
    XDG_DATA_HOME: join(home, 'data'),
    XDG_CONFIG_HOME: join(home, 'config'),
    XDG_RUNTIME_DIR: join(home, 'run'),
    DOCKER_CONFIG: join(home, 'docker'),
    REGISTRY_AUTH_FILE: authFile,
    CONTAINERS_REGISTRIES_CONF: registriesConf,
    _CONTAINERS_ROOTLESS_UID: '1000',
  };
}
