// The shipped alerting rules: promtool checks them and runs their unit tests, every alert has a
// unit test, and every metric they use is one the exporter declares (so a rename cannot leave an
// alert that silently never fires).
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { ExporterMetrics } from '../../src/exporter/metrics.js';
import { missingBinary, promtool } from '../exporter/helpers.js';

const ROOT = fileURLToPath(new URL('../..', import.meta.url));
const RULES = `${ROOT}contrib/prometheus/rdmactl.rules.yml`;
const RULE_TESTS = `${ROOT}test/contrib/rdmactl.rules.test.yml`;
const noPromtool = missingBinary('promtool', 'prometheus');
if (noPromtool) console.warn(`SKIPPED promtool rule checks: ${noPromtool}`);

describe('contrib/prometheus/rdmactl.rules.yml', () => {
  const rules = readFileSync(RULES, 'utf8');
  const alerts = [...rules.matchAll(/^\s*- alert: (\w+)$/gm)].map((m) => m[1]!);

  it('promtool check rules accepts it', { skip: noPromtool !== null }, () => {
    const result = promtool(['check', 'rules', RULES]);
    expect(result.status, result.output).toBe(0);
    expect(result.output).toContain(`SUCCESS: ${alerts.length} rules found`);
  });

  it('promtool test rules passes, and every alert is tested firing', { skip: noPromtool !== null }, () => {
    const result = promtool(['test', 'rules', RULE_TESTS]);
    expect(result.status, result.output).toBe(0);
    const tests = readFileSync(RULE_TESTS, 'utf8');
    for (const alert of alerts) {
      // A test with expected alerts (not only exp_alerts: []) for each alert name.
      expect(tests, alert).toMatch(new RegExp(`alertname: ${alert}\\n\\s+exp_alerts:\\n\\s+- exp_labels`));
    }
  });

  it('uses only metrics the exporter declares', async () => {
    const declared = new Set((await new ExporterMetrics({ version: 't', maxProcesses: 1, processLabelNames: [] })
      .registry.getMetricsAsJSON()).map((m) => m.name));
    const used = new Set([...rules.matchAll(/\b(rdmactl_[a-z_]+)\b/g)].map((m) => m[1]!));
    expect(used.size).toBeGreaterThan(5);
    for (const name of used) expect(declared, name).toContain(name);
  });
});
