// `copy` on images and situations at the edges.

import { Writable } from 'node:stream';

import { describe, expect, it } from 'vitest';

import { ProgressLine } from '../functions/cli/output.js';

describe('ProgressLine', () => {
  it('uses 80 columns on a terminal that reports a width of 0', () => {
    // Prepare: a pty nobody sized (script, some CI runners) says 0
    let written = '';
    const stderr = Object.assign(new Writable({
      write(chunk: Buffer, _encoding, done) {
        written += chunk.toString('utf8');
        done();
      },
    }), { isTTY: true, columns: 0 });
    const line = new ProgressLine({ stdout: stderr, stderr }, 0);
    const text = 'blobs 2/4 (0 mounted, 0 skipped)  14.0 MiB of 20.0 MiB';

    // Act
    line.update(text);

    // Assess
    expect(written).toBe(`\r\x1b[2K${text}`);
  });
});
