// What tells a person the backup is healthy, or is not: alarms on every
// way a run can go wrong, including the quiet one where no run happens at
// all, an SNS topic they all notify, and a dashboard of runs, images, bytes
// and failures.

import { Duration, Stack } from 'aws-cdk-lib';
import {
  Alarm,
  AlarmStatusWidget,
  ComparisonOperator,
  Dashboard,
  GraphWidget,
  type IMetric,
  Metric,
  TreatMissingData,
} from 'aws-cdk-lib/aws-cloudwatch';
import { SnsAction } from 'aws-cdk-lib/aws-cloudwatch-actions';
import type { IFunction } from 'aws-cdk-lib/aws-lambda';
import { Topic } from 'aws-cdk-lib/aws-sns';
import { EmailSubscription } from 'aws-cdk-lib/aws-sns-subscriptions';
import type { IStateMachine } from 'aws-cdk-lib/aws-stepfunctions';
import { Construct } from 'constructs';

/** Names of the metrics the Summarize step emits, per run. */
export const RUN_METRICS = {
  imagesCopied: 'ImagesCopied',
  imagesUpToDate: 'ImagesUpToDate',
  imagesFailed: 'ImagesFailed',
  imagesGone: 'ImagesGoneFromSource',
  bytesUploaded: 'BytesUploaded',
  blobsUploaded: 'BlobsUploaded',
  blobsMounted: 'BlobsMounted',
  blobsSkipped: 'BlobsSkipped',
  backupSucceeded: 'BackupSucceeded',
} as const;

export interface BackupMonitoringProps {
  /** The backup workflow. */
  readonly stateMachine: IStateMachine;

  /** The workflow's functions, by a short label used in alarm names. */
  readonly functions: Record<string, IFunction>;

  /** Longest time without a successful execution before alarming. */
  readonly maxBackupAge: Duration;

  /**
   * An address subscribed to the alarm topic.
   *
   * @default - no subscription
   */
  readonly alarmEmail?: string;

  /** The namespace of the run metrics (POWERTOOLS_METRICS_NAMESPACE). */
  readonly metricsNamespace: string;

  /** The `service` dimension Powertools adds (POWERTOOLS_SERVICE_NAME). */
  readonly serviceName: string;
}

/** Alarms, their topic and the dashboard of one backup workflow. */
export class BackupMonitoring extends Construct {
  readonly topic: Topic;
  readonly failedAlarm: Alarm;
  readonly timedOutAlarm: Alarm;
  readonly abortedAlarm: Alarm;
  readonly staleAlarm: Alarm;
  readonly functionErrorAlarms: Record<string, Alarm> = {};
  readonly dashboard: Dashboard;

  constructor(scope: Construct, id: string, props: BackupMonitoringProps) {
    super(scope, id);
    const { stateMachine } = props;

    this.topic = new Topic(this, 'AlarmTopic', {
      displayName: 'ghcr-backup alarms',
      enforceSSL: true,
    });
    if (props.alarmEmail) {
      this.topic.addSubscription(new EmailSubscription(props.alarmEmail));
    }
    const notify = new SnsAction(this.topic);

    // any one bad execution or failed invocation is worth a message: runs
    // are rare
    const onAny = (metric: Metric, id: string, what: string) => {
      const alarm = new Alarm(this, id, {
        metric: metric.with({ period: Duration.minutes(5),
          statistic: 'Sum' }),
        threshold: 1,
        comparisonOperator:
          ComparisonOperator.GREATER_THAN_OR_EQUAL_TO_THRESHOLD,
        evaluationPeriods: 1,
        treatMissingData: TreatMissingData.NOT_BREACHING,
        alarmDescription: what,
      });
      alarm.addAlarmAction(notify);
      return alarm;
    };
    this.failedAlarm = onAny(stateMachine.metricFailed(),
      'ExecutionsFailed', 'A backup run failed: an image could not be ' +
      'copied or a step failed. The execution\'s output in the Step ' +
      'Functions console lists every failure with its reason.');
    this.timedOutAlarm = onAny(stateMachine.metricTimedOut(),
      'ExecutionsTimedOut', 'A backup run outlived the workflow\'s ' +
      'timeout. Rerun it: images already copied are skipped.');
    this.abortedAlarm = onAny(stateMachine.metricAborted(),
      'ExecutionsAborted', 'A backup run was stopped before it finished.');

    // A backup that silently stopped running (schedule disabled, role
    // broken, start refused) emits nothing at all, so missing data must
    // count as breaching. One period as long as the whole window makes the
    // (sliding) evaluation "no success in the last maxBackupAge".
    this.staleAlarm = new Alarm(this, 'NoRecentBackup', {
      metric: stateMachine.metricSucceeded({
        period: props.maxBackupAge, statistic: 'Sum',
      }),
      threshold: 1,
      comparisonOperator: ComparisonOperator.LESS_THAN_THRESHOLD,
      evaluationPeriods: 1,
      treatMissingData: TreatMissingData.BREACHING,
      alarmDescription: 'No backup run succeeded in the last ' +
        `${props.maxBackupAge.toHumanString()}. Check the schedule, the ` +
        'latest executions, and the secrets. This alarm is also on from ' +
        'deployment until the first run succeeds.',
    });
    this.staleAlarm.addAlarmAction(notify);
    this.staleAlarm.addOkAction(notify);

    for (const [label, fn] of Object.entries(props.functions)) {
      const id = label.charAt(0).toUpperCase() + label.slice(1);
      this.functionErrorAlarms[label] = onAny(fn.metricErrors(),
        `${id}Errors`, `The ${label} function failed; its log group ` +
        'has the error (JSON lines, level ERROR).');
    }

    this.dashboard = this.buildDashboard(props);
  }

  private buildDashboard(props: BackupMonitoringProps): Dashboard {
    const { stateMachine } = props;
    const daily = { period: Duration.days(1), statistic: 'Sum' };
    const run = (name: string, label: string): IMetric => new Metric({
      namespace: props.metricsNamespace,
      metricName: name,
      dimensionsMap: { service: props.serviceName },
      label,
      ...daily,
    });

    const dashboard = new Dashboard(this, 'Dashboard', {
      dashboardName: `${Stack.of(this).stackName}-backup`,
      defaultInterval: Duration.days(14),
    });
    const width = 12;
    const height = 6;

    dashboard.addWidgets(
      new GraphWidget({
        title: 'Runs per day', width, height,
        left: [
          stateMachine.metricStarted({ ...daily, label: 'started' }),
          stateMachine.metricSucceeded({ ...daily, label: 'succeeded' }),
          stateMachine.metricFailed({ ...daily, label: 'failed' }),
          stateMachine.metricTimedOut({ ...daily, label: 'timed out' }),
          stateMachine.metricAborted({ ...daily, label: 'aborted' }),
        ],
      }),
      new GraphWidget({
        title: 'Images per day', width, height,
        left: [
          run(RUN_METRICS.imagesCopied, 'copied'),
          run(RUN_METRICS.imagesUpToDate, 'up to date'),
          run(RUN_METRICS.imagesFailed, 'failed'),
          run(RUN_METRICS.imagesGone, 'gone from source'),
        ],
      }),
    );
    dashboard.addWidgets(
      new GraphWidget({
        title: 'Bytes uploaded per day', width, height,
        left: [run(RUN_METRICS.bytesUploaded, 'bytes uploaded')],
      }),
      new GraphWidget({
        title: 'Blobs per day', width, height,
        left: [
          run(RUN_METRICS.blobsUploaded, 'uploaded'),
          run(RUN_METRICS.blobsMounted, 'mounted'),
          run(RUN_METRICS.blobsSkipped, 'already there'),
        ],
      }),
    );

    const functions = Object.entries(props.functions);
    dashboard.addWidgets(
      new GraphWidget({
        title: 'Failures per day', width, height,
        left: [
          run(RUN_METRICS.imagesFailed, 'images failed'),
          stateMachine.metricFailed({ ...daily, label: 'runs failed' }),
          ...functions.map(([label, fn]) =>
            fn.metricErrors({ ...daily, label: `${label} errors` })),
        ],
      }),
      new GraphWidget({
        title: 'Function duration (max)', width, height,
        left: functions.map(([label, fn]) => fn.metricDuration({
          period: Duration.hours(1), statistic: 'Maximum', label,
        })),
      }),
    );
    dashboard.addWidgets(new AlarmStatusWidget({
      title: 'Alarms', width: 24, height: 4,
      alarms: [this.staleAlarm, this.failedAlarm, this.timedOutAlarm,
        this.abortedAlarm, ...Object.values(this.functionErrorAlarms)],
    }));
    return dashboard;
  }
}
