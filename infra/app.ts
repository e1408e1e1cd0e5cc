// The CDK app `cdk.json` runs: one backup stack, checked by the cdk-nag
// AwsSolutions pack at every synth. Settings come from CDK context
// (`-c org=NAME -c target=HOST/PATH`, or cdk.json); see BackupStackProps.

import { App, Validations } from 'aws-cdk-lib';
import { AwsSolutionsChecks } from 'cdk-nag';

import { BackupSettingsError } from './settings.js';
import { BackupStack } from './stack.js';

const app = new App();
const stackName: string = app.node.tryGetContext('stackName') ?? 'GhcrBackup';

try {
  new BackupStack(app, stackName, {
    // environment-agnostic unless the CLI knows an account and region:
    // synth needs no credentials
    env: {
      account: process.env.CDK_DEFAULT_ACCOUNT,
      region: process.env.CDK_DEFAULT_REGION,
    },
    description: 'ghcr-backup: scheduled backups of GHCR container images',
  });
} catch (error) {
  // a settings mistake is the user's to fix: the message, not a trace
  if (!(error instanceof BackupSettingsError)) throw error;
  process.stderr.write(`${error.message}\n`);
  process.exit(1);
}

// a finding that is not acknowledged with its reason fails the synth
Validations.of(app).addPlugins(new AwsSolutionsChecks(app));
