// One registry client per host for a whole process, with the credentials
// each host needs: ECR hosts get tokens from the AWS role and repositories
// created before their first push; every other host the provider given.

import { EcrRepositories, ecrCredentialProvider, parseEcrHost }
  from '../aws/ecr.js';
import { RegistryClient } from '../registry/client.js';
import type { RetryOptions } from '../registry/retry.js';
import type {
  CredentialProvider, Logger, Registry, RegistryEndpoint,
} from '../registry/types.js';

export interface RegistriesOptions {
  /** Credentials of every host that is not ECR. */
  credentials: CredentialProvider;
  logger?: Logger;
  retry?: RetryOptions;
}

/** ECR takes uploads in parts of 5 MiB at least (the last excepted). */
const MiB = 1024 * 1024;
const ECR_UPLOADS = {
  chunkedUploadAbove: 0,
  chunkSize: 20 * MiB,
  minChunkSize: 5 * MiB,
};

export class Registries {
  readonly #options: RegistriesOptions;
  readonly #clients = new Map<string, Registry>();
  readonly #ecr = new Map<string, EcrRepositories>();
  readonly #ecrCredentials: CredentialProvider;

  constructor(options: RegistriesOptions) {
    this.#options = options;
    this.#ecrCredentials = ecrCredentialProvider({
      fallback: options.credentials, logger: options.logger,
    });
  }

  /** The client of a registry, created on first use. */
  registry(endpoint: RegistryEndpoint): Registry {
    const key = `${endpoint.scheme}://${endpoint.host}`;
    let client = this.#clients.get(key);
    if (!client) {
      const ecr = parseEcrHost(endpoint.host) !== undefined;
      client = new RegistryClient({
        endpoint,
        credentials: ecr ? this.#ecrCredentials : this.#options.credentials,
        logger: this.#options.logger,
        retry: this.#options.retry,
        ...(ecr ? ECR_UPLOADS : {}),
      });
      this.#clients.set(key, client);
    }
    return client;
  }

  /** Creates an ECR repository before its first push; else nothing. */
  async prepareRepository(target: RegistryEndpoint, repository: string):
    Promise<void> {
    if (!parseEcrHost(target.host)) return;

    let repositories = this.#ecr.get(target.host);
    if (!repositories) {
      repositories = new EcrRepositories(target.host,
        { logger: this.#options.logger });
      this.#ecr.set(target.host, repositories);
    }
    await repositories.ensureRepository(repository);
  }
}
