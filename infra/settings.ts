// The stack's settings: typed props, their defaults, CDK context as a second
// source, and every check made at synth time so that a mistake shows up in
// `cdk synth` with what to change, never as a failed deployment or a
// backup that silently does nothing.

import { Duration, type StackProps } from 'aws-cdk-lib';
import { RetentionDays } from 'aws-cdk-lib/aws-logs';
import type { Construct } from 'constructs';

import { parseEcrHost } from '../functions/lib/aws/ecr.js';
import { parseRegistryLocation } from '../functions/lib/registry/reference.js';
import {
  MAX_IMAGE_CONCURRENCY,
  parseExecutionInput,
} from '../functions/lib/run/input.js';

export interface BackupStackProps extends StackProps {
  /**
   * The GitHub organisation whose container packages are backed up. Set
   * exactly one of `org` and `user`.
   *
   * @default - the `org` context value (`-c org=NAME`)
   */
  readonly org?: string;

  /**
   * A personal account whose container packages are backed up, instead of
   * an organisation.
   *
   * @default - the `user` context value
   */
  readonly user?: string;

  /**
   * The registry the images are copied into: `[http://]HOST[:PORT][/PATH]`.
   * Package `NAME` with tag `T` lands at `TARGET/NAME:T`. An ECR host
   * (`ACCOUNT.dkr.ecr.REGION.amazonaws.com`) is reached with the
   * functions' role; any other registry with `targetCredentialsSecret`.
   *
   * @default - the `target` context value; required
   */
  readonly target?: string;

  /**
   * When backups run: an EventBridge Scheduler expression, `rate(...)` or
   * `cron(minutes hours day-of-month month day-of-week year)`.
   *
   * @default 'cron(0 3 * * ? *)' (daily at 03:00 in `timeZone`)
   */
  readonly schedule?: string;

  /**
   * The IANA time zone `schedule` is read in, e.g. `Europe/Berlin`.
   *
   * @default 'UTC'
   */
  readonly timeZone?: string;

  /**
   * How long without a successful backup before the staleness alarm goes
   * off. CloudWatch evaluates an alarm over at most 7 days.
   *
   * @default - twice the schedule's period (2 days for a daily schedule)
   */
  readonly maxBackupAge?: Duration;

  /**
   * An address that receives the alarms (SNS e-mail; confirm the
   * subscription from the first message).
   *
   * @default - no subscription; subscribe to the `AlarmTopicArn` output
   */
  readonly alarmEmail?: string;

  /**
   * Only packages whose name matches this regular expression.
   *
   * @default - every package
   */
  readonly packages?: string;

  /**
   * Tags matching this regular expression are not backed up.
   *
   * @default - no tag is excluded
   */
  readonly excludeTags?: string;

  /**
   * Copy every tagged version instead of thinning semver lines to their
   * highest patch.
   *
   * @default false
   */
  readonly allVersions?: boolean;

  /**
   * Images copied at once by a scheduled run (the Map's concurrency).
   *
   * @default - the workflow's default
   */
  readonly concurrency?: number;

  /**
   * An existing Secrets Manager secret (name or ARN) whose value is a
   * GitHub token with `read:packages`.
   *
   * @default - a secret named `STACK/github-token` is created without a
   * value; put the token in it after the first deploy
   */
  readonly githubTokenSecret?: string;

  /**
   * An existing Secrets Manager secret (name or ARN) holding the target's
   * credentials as JSON: `{"username": "...", "password": "..."}`.
   *
   * @default - none for an ECR target (the role is used); for any other
   * target a secret named `STACK/target-credentials` is created without
   * a value
   */
  readonly targetCredentialsSecret?: string;

  /**
   * The registry GitHub serves the packages from, `[http://]HOST[:PORT]`.
   *
   * @default 'ghcr.io'
   */
  readonly sourceRegistry?: string;

  /**
   * The GitHub REST API; for GitHub Enterprise Server `https://HOST/api/v3`.
   *
   * @default 'https://api.github.com'
   */
  readonly githubApi?: string;

  /**
   * Days the functions' and the workflow's logs are kept.
   *
   * @default 90
   */
  readonly logRetentionDays?: number;
}

/** Every setting resolved, defaulted and checked. */
export interface BackupSettings {
  owner: { org: string } | { user: string };
  target: string;
  /** Set when the target is an ECR registry. */
  ecr?: { account: string; region: string; host: string;
    /** The repository prefix under the registry, '' for none. */
    path: string };
  schedule: string;
  /** The schedule's period when it can be told from the expression. */
  schedulePeriod?: Duration;
  timeZone: string;
  maxBackupAge: Duration;
  alarmEmail?: string;
  packages?: string;
  excludeTags?: string;
  allVersions: boolean;
  concurrency?: number;
  githubTokenSecret?: string;
  targetCredentialsSecret?: string;
  sourceRegistry: string;
  githubApi: string;
  logRetention: RetentionDays;
}

export const DEFAULT_SCHEDULE = 'cron(0 3 * * ? *)';

/** CloudWatch evaluates an alarm over at most 7 days (1 day under 1 h). */
const MAX_ALARM_WINDOW = Duration.days(7);

/** A configuration mistake found at synth; the message lists them all. */
export class BackupSettingsError extends Error {
  override readonly name = 'BackupSettingsError';

  constructor(readonly problems: string[]) {
    super('ghcr-backup stack settings are invalid:\n' +
      problems.map((p) => `  - ${p}`).join('\n'));
  }
}

/**
 * Reads props, falls back to CDK context (`-c key=value`), applies the
 * defaults and checks everything. Throws one BackupSettingsError naming
 * every problem and how to fix it.
 */
export function resolveSettings(scope: Construct,
  props: BackupStackProps): BackupSettings {
  const problems: string[] = [];
  const context = (key: string): string | undefined => {
    const value: unknown = scope.node.tryGetContext(key);
    if (value === undefined || value === null || value === '') {
      return undefined;
    }
    return typeof value === 'string' ? value : JSON.stringify(value);
  };
  const text = <K extends keyof BackupStackProps>(key: K) =>
    (props[key] as string | undefined) ?? context(key);

  const org = text('org');
  const user = text('user');
  let owner: BackupSettings['owner'] = { org: '' };
  if (org && user) {
    problems.push('both org and user are set: keep one (-c org=NAME or ' +
      '-c user=NAME)');
  } else if (!org && !user) {
    problems.push('org is missing: pass -c org=NAME (or -c user=NAME for ' +
      'a personal account), or set it in cdk.json "context"');
  } else {
    const name = (org ?? user)!;
    if (!GITHUB_LOGIN.test(name)) {
      problems.push(`"${name}" is not a GitHub account name: letters, ` +
        'digits and single dashes, at most 39 characters');
    }
    owner = org ? { org } : { user: name };
  }

  const target = text('target');
  let ecr: BackupSettings['ecr'];
  if (!target) {
    problems.push('target is missing: pass -c target=HOST[/PATH], e.g. ' +
      '-c target=123456789012.dkr.ecr.eu-west-1.amazonaws.com/ghcr');
  } else {
    const location = checkTarget(target, problems);
    const registry = location && parseEcrHost(location.host);
    if (location && registry) {
      ecr = { ...registry, path: location.path };
      if (location.scheme === 'http') {
        problems.push(`target ${target}: ECR is only reachable over ` +
          'HTTPS; drop "http://"');
      }
    }
  }

  const schedule = (text('schedule') ?? DEFAULT_SCHEDULE).trim();
  const schedulePeriod = checkSchedule(schedule, problems);

  const timeZone = text('timeZone') ?? 'UTC';
  if (!isTimeZone(timeZone)) {
    problems.push(`timeZone "${timeZone}" is not an IANA time zone; use ` +
      'a name such as UTC, Europe/Berlin or America/New_York');
  }

  const maxBackupAge = checkMaxBackupAge(props.maxBackupAge,
    context('maxBackupAge'), schedulePeriod, problems);

  const alarmEmail = text('alarmEmail');
  if (alarmEmail !== undefined && !EMAIL.test(alarmEmail)) {
    problems.push(`alarmEmail "${alarmEmail}" is not an e-mail address`);
  }

  const packages = text('packages');
  const excludeTags = text('excludeTags');
  for (const [key, value] of [['packages', packages],
    ['excludeTags', excludeTags]] as const) {
    if (value === undefined) continue;
    try {
      new RegExp(value);
    } catch (error) {
      problems.push(`${key} is not a valid regular expression: ` +
        `${(error as Error).message}`);
    }
  }

  const allVersions = checkBoolean('allVersions',
    props.allVersions ?? context('allVersions'), problems);
  const concurrency = checkConcurrency(
    props.concurrency ?? context('concurrency'), problems);

  const githubTokenSecret = text('githubTokenSecret');
  const targetCredentialsSecret = text('targetCredentialsSecret');
  for (const [key, value] of [['githubTokenSecret', githubTokenSecret],
    ['targetCredentialsSecret', targetCredentialsSecret]] as const) {
    if (value !== undefined && !SECRET_ID.test(value)) {
      problems.push(`${key} "${value}" is neither a Secrets Manager ` +
        'secret name nor its ARN; names use letters, digits and /_+=.@-');
    }
  }

  const sourceRegistry = text('sourceRegistry') ?? 'ghcr.io';
  const source = checkTarget(sourceRegistry, problems, 'sourceRegistry');
  if (source?.path) {
    problems.push(`sourceRegistry ${sourceRegistry} has a path; write ` +
      'only [http://]HOST[:PORT]');
  }

  const githubApi = (text('githubApi') ?? 'https://api.github.com')
    .replace(/\/+$/, '');
  if (!/^https?:\/\/[^\s/]+(\/\S*)?$/.test(githubApi)) {
    problems.push(`githubApi "${githubApi}" is not a URL; use ` +
      'https://api.github.com or https://HOST/api/v3');
  }

  const logRetention = checkRetention(
    props.logRetentionDays ?? context('logRetentionDays'), problems);

  if (problems.length > 0) throw new BackupSettingsError(problems);

  const settings: BackupSettings = {
    owner, target: target!, ecr, schedule, schedulePeriod, timeZone,
    maxBackupAge: maxBackupAge!, alarmEmail, packages, excludeTags,
    allVersions, concurrency, githubTokenSecret, targetCredentialsSecret,
    sourceRegistry, githubApi, logRetention,
  };

  // the schedule's input must pass the workflow's own first check
  try {
    parseExecutionInput(scheduledInput(settings));
  } catch (error) {
    throw new BackupSettingsError([`the scheduled input would be ` +
      `refused by the workflow: ${(error as Error).message}`]);
  }
  return settings;
}

/**
 * The input a scheduled run starts the workflow with: the same shape as
 * the console's "Start execution" and `npm start -- start`.
 */
export function scheduledInput(settings: BackupSettings):
  Record<string, unknown> {
  return {
    ...settings.owner,
    target: settings.target,
    ...(settings.packages !== undefined && { packages: settings.packages }),
    ...(settings.excludeTags !== undefined &&
      { excludeTags: settings.excludeTags }),
    ...(settings.allVersions && { allVersions: true }),
    ...(settings.concurrency !== undefined &&
      { concurrency: settings.concurrency }),
  };
}

const GITHUB_LOGIN = /^[A-Za-z0-9](?:[A-Za-z0-9]|-(?=[A-Za-z0-9])){0,38}$/;
const EMAIL = /^[^\s@]+@[^\s@]+\.[^\s@]+$/;
const SECRET_ID =
  /^(?:arn:aws[a-z-]*:secretsmanager:[a-z0-9-]+:\d{12}:secret:)?[\w/+=.@-]{1,512}$/;
interface Location {
  scheme: 'http' | 'https';
  host: string;
  path: string;
}

/** Reads `[http://]HOST[:PORT][/PATH]` as the CLI and the workflow do. */
function checkTarget(text: string, problems: string[],
  key = 'target'): Location | undefined {
  try {
    const { registry, path } = parseRegistryLocation(text);
    return { scheme: registry.scheme, host: registry.host, path };
  } catch (error) {
    const reason = error instanceof Error ? error.message : String(error);
    problems.push(`${key} "${text}" is not [http://]HOST[:PORT][/PATH] ` +
      `(${reason}); e.g. registry.example.com/backup`);
    return undefined;
  }
}

const RATE = /^rate\((\d+) (minutes?|hours?|days?)\)$/;
const CRON = /^cron\(([^)]+)\)$/;
const DAYS = /^(?:[1-7]|SUN|MON|TUE|WED|THU|FRI|SAT)$/i;

/**
 * Checks a Scheduler expression and returns its period when the
 * expression has a fixed one (rates, hourly, daily and weekly crons).
 */
export function checkSchedule(expression: string,
  problems: string[]): Duration | undefined {
  const rate = RATE.exec(expression);
  if (rate) {
    const count = Number(rate[1]);
    const unit = rate[2]!.replace(/s$/, '');
    if (count < 1 || (count === 1) !== (rate[2] === unit)) {
      problems.push(`schedule "${expression}": write rate(1 ${unit}) or ` +
        `rate(N ${unit}s) with N > 1`);
      return undefined;
    }
    return unit === 'minute' ? Duration.minutes(count)
      : unit === 'hour' ? Duration.hours(count) : Duration.days(count);
  }

  const cron = CRON.exec(expression);
  const fields = cron?.[1]!.trim().split(/\s+/);
  if (!fields || fields.length !== 6) {
    problems.push(`schedule "${expression}" is neither rate(N unit) nor ` +
      'cron(minutes hours day-of-month month day-of-week year), e.g. ' +
      `${DEFAULT_SCHEDULE} for daily at 03:00`);
    return undefined;
  }

  // Scheduler wants exactly one of day-of-month and day-of-week as `?`
  const [minute, hour, dayOfMonth, month, dayOfWeek] = fields as
    [string, string, string, string, string];
  if ((dayOfMonth === '?') === (dayOfWeek === '?')) {
    problems.push(`schedule "${expression}": one of day-of-month (3rd ` +
      'field) and day-of-week (5th field) must be "?", e.g. ' +
      DEFAULT_SCHEDULE);
    return undefined;
  }

  const number = /^\d+$/;
  const any = (field: string) => field === '*' || field === '?';
  if (!number.test(minute) || month !== '*') return undefined;
  if (any(dayOfMonth) && any(dayOfWeek)) {
    if (hour === '*') return Duration.hours(1);
    const every = /^(?:\*|0)\/(\d+)$/.exec(hour);
    if (every && 24 % Number(every[1]) === 0) {
      return Duration.hours(Number(every[1]));
    }
    if (number.test(hour)) return Duration.days(1);
    return undefined;
  }
  if (number.test(hour) && dayOfMonth === '?' && DAYS.test(dayOfWeek)) {
    return Duration.days(7);
  }
  return undefined;
}

function checkMaxBackupAge(fromProps: Duration | undefined,
  fromContext: string | undefined, period: Duration | undefined,
  problems: string[]): Duration | undefined {
  let age = fromProps;
  if (!age && fromContext !== undefined) {
    const match = /^(\d+)\s*(m|h|d)$/.exec(fromContext.trim());
    if (!match) {
      problems.push(`maxBackupAge "${fromContext}" is not a duration; ` +
        'write e.g. 90m, 36h or 2d');
      return undefined;
    }
    const count = Number(match[1]);
    age = match[2] === 'm' ? Duration.minutes(count)
      : match[2] === 'h' ? Duration.hours(count) : Duration.days(count);
  }

  if (!age && !period) {
    problems.push('the schedule has no fixed period, so the staleness ' +
      'alarm cannot be derived from it: set maxBackupAge (-c ' +
      'maxBackupAge=2d), the longest time without a successful backup');
    return undefined;
  }
  age ??= Duration.seconds(period!.toSeconds() * 2);

  const seconds = age.toSeconds();
  if (seconds % 60 !== 0 || seconds < 120) {
    problems.push(`maxBackupAge ${age.toHumanString()} must be a whole ` +
      'number of minutes, at least 2');
  } else if (seconds > MAX_ALARM_WINDOW.toSeconds()) {
    problems.push(`maxBackupAge ${age.toHumanString()} is longer than the ` +
      '7 days CloudWatch can evaluate an alarm over; schedule backups at ' +
      'least every 3.5 days, or set maxBackupAge to at most 7d');
  } else if (period && seconds <= period.toSeconds()) {
    problems.push(`maxBackupAge ${age.toHumanString()} is not longer than ` +
      `the schedule's period ${period.toHumanString()}: the alarm would ` +
      'go off between two healthy runs; make it at least twice the period');
  }
  return age;
}

function checkBoolean(key: string, value: boolean | string | undefined,
  problems: string[]): boolean {
  if (value === undefined || typeof value === 'boolean') return !!value;
  if (value === 'true' || value === 'false') return value === 'true';
  problems.push(`${key} "${value}" must be true or false`);
  return false;
}

function checkConcurrency(value: number | string | undefined,
  problems: string[]): number | undefined {
  if (value === undefined) return undefined;
  const count = Number(value);
  if (!Number.isInteger(count) || count < 1 || count > MAX_IMAGE_CONCURRENCY) {
    problems.push(`concurrency "${value}" must be a whole number from 1 ` +
      `to ${MAX_IMAGE_CONCURRENCY}`);
    return undefined;
  }
  return count;
}

function checkRetention(value: number | string | undefined,
  problems: string[]): RetentionDays {
  if (value === undefined) return RetentionDays.THREE_MONTHS;
  const days = Number(value);
  const allowed = Object.values(RetentionDays)
    .filter((d): d is number => typeof d === 'number' && d > 0)
    .sort((a, b) => a - b);
  if (!allowed.includes(days)) {
    problems.push(`logRetentionDays "${value}" is not a retention ` +
      `CloudWatch Logs offers; pick one of ${allowed.join(', ')}`);
    return RetentionDays.THREE_MONTHS;
  }
  return days as RetentionDays;
}

function isTimeZone(name: string): boolean {
  try {
    new Intl.DateTimeFormat('en', { timeZone: name });
    return true;
  } catch {
    return false;
  }
}
