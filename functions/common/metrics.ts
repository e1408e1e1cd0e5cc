// The run's metrics, as CloudWatch embedded metrics (EMF) in the logs:
// namespace GhcrBackup, one dimension `service` (ghcr-backup). Alarms and
// the dashboard read them by these names.

import { MetricUnit, type Metrics } from '@aws-lambda-powertools/metrics';

import type { RunSummary } from '../lib/run/types.js';

export const METRIC_NAMES = [
  'ImagesCopied', 'ImagesUpToDate', 'ImagesFailed', 'ImagesGoneFromSource',
  'BytesUploaded', 'BlobsUploaded', 'BlobsMounted', 'BlobsSkipped',
  'BackupSucceeded',
] as const;

/**
 * Emits one data point of every metric for a finished run. A dry run
 * emits nothing: it moved nothing, and must not count as a backup.
 */
export function publishRunMetrics(metrics: Metrics, summary: RunSummary):
  void {
  if (summary.dryRun) return;

  const count = MetricUnit.Count;
  metrics.addMetric('ImagesCopied', count, summary.images.copied);
  metrics.addMetric('ImagesUpToDate', count, summary.images.upToDate);
  metrics.addMetric('ImagesFailed', count, summary.images.failed);
  metrics.addMetric('ImagesGoneFromSource', count,
    summary.goneFromSource.count);
  metrics.addMetric('BytesUploaded', MetricUnit.Bytes,
    summary.bytesUploaded);
  metrics.addMetric('BlobsUploaded', count, summary.blobs.uploaded);
  metrics.addMetric('BlobsMounted', count, summary.blobs.mounted);
  metrics.addMetric('BlobsSkipped', count, summary.blobs.skipped);
  metrics.addMetric('BackupSucceeded', count, summary.succeeded ? 1 : 0);
  metrics.publishStoredMetrics();
}
