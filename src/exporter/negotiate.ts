// What a scraper asks for in its Accept and Accept-Encoding headers (RFC 9110 §12.5): the exposition
// format (OpenMetrics 1.0.0 or Prometheus text) and whether the body may be gzipped. Pure.

import type { ExpositionFormat } from './metrics.js';

interface MediaRange {
  /** "type/subtype", lowercased; "*" parts are wildcards. */
  type: string;
  params: Map<string, string>;
  q: number;
}

/** The q value of a parameter list; 1 when absent, 0 when malformed (RFC 9110: 0 to 1, 3 decimals). */
function quality(value: string | undefined): number {
  if (value === undefined) return 1;
  return /^(?:0(?:\.\d{0,3})?|1(?:\.0{0,3})?)$/.test(value) ? Number(value) : 0;
}

function parseList(header: string): MediaRange[] {
  const ranges: MediaRange[] = [];
  for (const element of header.split(',')) {
    const [type = '', ...rest] = element.split(';').map((part) => part.trim());
    if (type === '') continue;
    const params = new Map<string, string>();
    for (const param of rest) {
      const eq = param.indexOf('=');
      if (eq <= 0) continue;
      params.set(param.slice(0, eq).trim().toLowerCase(), param.slice(eq + 1).trim().replace(/^"(.*)"$/, '$1'));
    }
    ranges.push({ type: type.toLowerCase(), params, q: quality(params.get('q')) });
  }
  return ranges;
}

/** The highest q the header gives something matching `matches`; 0 when nothing matches. */
function bestQuality(ranges: readonly MediaRange[], matches: (range: MediaRange) => boolean): number {
  return ranges.filter(matches).reduce((best, range) => Math.max(best, range.q), 0);
}

/**
 * OpenMetrics when the client lists application/openmetrics-text version 1.0.0 (or without a
 * version) at least as high as the text format; Prometheus text otherwise, and with no header.
 * Prometheus 2.x asks for OpenMetrics first by default.
 */
export function negotiateFormat(accept: string | undefined): ExpositionFormat {
  if (accept === undefined) return 'text';
  const ranges = parseList(accept);
  const openMetrics = bestQuality(ranges, (r) => r.type === 'application/openmetrics-text' && (r.params.get('version') ?? '1.0.0') === '1.0.0');
  if (openMetrics === 0) return 'text';
  const text = bestQuality(ranges, (r) => r.type === 'text/plain' || r.type === 'text/*' || r.type === '*/*');
  return openMetrics >= text ? 'openmetrics' : 'text';
}

/** Whether the client accepts a gzip body: gzip (or x-gzip, or *) with a q above 0, and gzip not refused. */
export function acceptsGzip(acceptEncoding: string | undefined): boolean {
  if (acceptEncoding === undefined) return false;
  const codings = parseList(acceptEncoding);
  const named = codings.filter((c) => c.type === 'gzip' || c.type === 'x-gzip');
  if (named.length > 0) return named.some((c) => c.q > 0);
  return codings.some((c) => c.type === '*' && c.q > 0);
}
