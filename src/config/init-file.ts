import { stringify } from 'smol-toml';
import { isPlainObject } from '../plain-object.js';
import type { ConfigKey } from './config-keys.js';
import { CONFIG_FILE_NAME, CONFIG_SCHEMA } from './config.js';
import { PLACEHOLDERS } from './placeholders.js';

function tomlValue(value: unknown): string {
  if (isPlainObject(value)) {
    const entries = Object.entries(value).map(([k, v]) => `${JSON.stringify(k)} = ${tomlValue(v)}`);
    return entries.length === 0 ? '{}' : `{ ${entries.join(', ')} }`;
  }
  // smol-toml stringifies whole documents; a one-key document gives "k = <value>".
  const line = stringify({ k: value }).trim();
  return line.slice(line.indexOf('=') + 1).trim();
}

/**
 * The text `agent-pool init` writes: every section and key with its default value and a
 * comment saying what it does. Loading it gives exactly the defaults.
 */
export function renderInitFile(): string {
  const lines = [
    `# ${CONFIG_FILE_NAME}: how agent-pool runs the agents of this project.`,
    '# Every key has a default; delete what you do not change.',
    `# Placeholders in args, prompt and setup: ${PLACEHOLDERS.map((p) => `{{${p}}}`).join(', ')}, and {{port:NAME}} (a service's port).`,
    '# The file is read again at each startAgent, so edits apply without a restart.',
  ];
  for (const [section, keys] of Object.entries(CONFIG_SCHEMA)) {
    lines.push('', `[${section}]`);
    if (section === 'agent') lines.push('# The profile named "default". More profiles: [agents.NAME], each with these keys.');
    for (const [key, spec] of Object.entries(keys as Record<string, ConfigKey<unknown>>)) {
      // `format` is kind's old name: setting both is an error, so only kind is written.
      if (section === 'agent' && key === 'format') continue;
      // An array of tables: a `webhook = []` line would clash with a [[notify.webhook]] added below.
      if (section === 'notify' && key === 'webhook') continue;
      lines.push(`# ${spec.doc}`, `${key} = ${tomlValue(spec.default)}`);
    }
  }
  lines.push(
    '',
    '# Another profile, chosen with startAgent(agent: "codex"):',
    '# [agents.codex]',
    '# kind = "codex"',
    '# args = ["-m", "gpt-5.5"]',
    '',
    '# A dev server per story, each on a port of its own (see docs/services.md):',
    '# [services]',
    '# ports = "4800-4999"',
    '# [services.web]',
    '# command = "npm run dev -- --port {{port}} --strictPort"   # its own port, never a neighbour story\'s',
    '# ready = "ready in"',
    '',
    '# A webhook, one per receiver (see docs/notifications.md):',
    '# [[notify.webhook]]',
    '# url_env = "SLACK_WEBHOOK_URL"      # or url = "https://hooks.example.com/agent-pool"',
    '# on = ["waiting", "completed", "failed", "stopped"]',
    '# secret_env = "AGENT_POOL_WEBHOOK_SECRET"   # signs each body (X-Agent-Pool-Signature)',
    '# format = "slack"                    # or "json"',
  );
  return `${lines.join('\n')}\n`;
}
