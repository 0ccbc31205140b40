// Columns of the process table. Labels and formatting follow stat's PROCESS_FIELDS (same keys);
// '%LIMIT' is the one column of top's own (pinned or locked as a share of RLIMIT_MEMLOCK).
// Narrow terminals drop columns in dropOrder (lowest first) instead of wrapping.

import { PROCESS_FIELDS } from '../../observe/statFields.js';
import { formatValue, type Field } from '../../lib/fields.js';
import type { ProcessRow } from '../../observe/stat.js';
import type { DisplayRow } from '../types.js';
import { bytesCell, limitPercentText, type Column } from '../format.js';

function field(key: string): Field<ProcessRow> {
  const found = PROCESS_FIELDS.find((f) => f.key === key);
  if (!found) throw new Error(`no process field '${key}'`);
  return found;
}

function fromField(key: string, width: number, extra: Partial<Column<DisplayRow>> = {}): Column<DisplayRow> {
  const f = field(key);
  const kind = f.kind ?? 'text';
  return {
    key,
    label: f.label,
    width,
    align: kind === 'bytes' || key === 'pid' ? 'right' : 'left',
    text: (row) => {
      const value = f.get(row);
      return kind === 'bytes' && (typeof value === 'number' || value === null) ? bytesCell(value, f.nullText) : formatValue(kind, value, f.nullText);
    },
    ...extra,
  };
}

export const PROCESS_COLUMNS: readonly Column<DisplayRow>[] = [
  fromField('pid', 7),
  fromField('user', 8, { dropOrder: 2 }),
  fromField('comm', 15),
  fromField('pinnedBytes', 10),
  fromField('lockedBytes', 10, { dropOrder: 3 }),
  fromField('memlockLimitBytes', 10, { dropOrder: 5 }),
  { key: 'limitPercent', label: '%LIMIT', width: 6, align: 'right', dropOrder: 4, text: limitPercentText },
  fromField('flags', 8, { dropOrder: 1, flex: true }),
];
