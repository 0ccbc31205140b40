// Content negotiation of /metrics: the Accept and Accept-Encoding headers real scrapers send.
import { describe, expect, it } from 'vitest';
import { acceptsGzip, negotiateFormat } from '../../src/exporter/negotiate.js';

describe('negotiateFormat', () => {
  it.each([
    // Prometheus 2.x default (OpenMetrics first).
    ['application/openmetrics-text;version=1.0.0,application/openmetrics-text;version=0.0.1;q=0.75,text/plain;version=0.0.4;q=0.5,*/*;q=0.1', 'openmetrics'],
    // Prometheus 3.x default: protobuf first (not served), then OpenMetrics above text.
    ['application/vnd.google.protobuf;proto=io.prometheus.client.MetricFamily;encoding=delimited;q=0.5,application/openmetrics-text;version=1.0.0;q=0.4,application/openmetrics-text;version=0.0.1;q=0.3,text/plain;version=1.0.0;q=0.2,text/plain;version=0.0.4;q=0.1,*/*;q=0.05', 'openmetrics'],
    // Prometheus with scrape_protocols: [PrometheusText0.0.4].
    ['text/plain;version=0.0.4;q=0.5,*/*;q=0.1', 'text'],
    ['application/openmetrics-text; version=1.0.0', 'openmetrics'],
    ['application/openmetrics-text', 'openmetrics'],
    ['Application/OpenMetrics-Text; Version="1.0.0"', 'openmetrics'],
    // Only OpenMetrics 0.0.1, which prom-client does not write: text.
    ['application/openmetrics-text;version=0.0.1', 'text'],
    ['application/openmetrics-text;version=1.0.0;q=0', 'text'],
    ['text/plain,application/openmetrics-text;version=1.0.0;q=0.9', 'text'],
    ['application/openmetrics-text;version=1.0.0;q=0.9,*/*', 'text'],
    // A malformed q counts as 0.
    ['application/openmetrics-text;version=1.0.0;q=2', 'text'],
    ['*/*', 'text'],
    ['', 'text'],
    [undefined, 'text'],
  ] as const)('%s → %s', (accept, format) => {
    expect(negotiateFormat(accept)).toBe(format);
  });
});

describe('acceptsGzip', () => {
  it.each([
    ['gzip', true],
    // What Prometheus and curl --compressed send.
    ['gzip, deflate, br, zstd', true],
    ['deflate, gzip;q=1.0, *;q=0.5', true],
    ['x-gzip', true],
    ['*', true],
    ['GZIP', true],
    ['gzip;q=0', false],
    ['gzip;q=0, *', false],
    ['*;q=0', false],
    ['identity', false],
    ['br, deflate', false],
    ['', false],
    [undefined, false],
  ] as const)('%s → %s', (header, expected) => {
    expect(acceptsGzip(header)).toBe(expected);
  });
});
