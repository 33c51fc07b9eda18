import { existsSync, mkdirSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import type { TestContext } from 'vitest';
import { tempDir } from './temp.js';

/**
 * Where `.ci/run` installs the agent CLIs the tests run for real (test/agent-clis, with a
 * lockfile of its own; they are not dependencies of agent-pool).
 */
const BIN = fileURLToPath(new URL('../agent-clis/node_modules/.bin', import.meta.url));

/** The agent CLIs the tests run, besides Claude Code (a devDependency). */
export type AgentCli = 'codex' | 'gemini' | 'opencode';

/**
 * The CLIs that speak the Agent Client Protocol through an adapter of their own, which is
 * the command over ACP: Codex through codex-acp (@agentclientprotocol/codex-acp, which runs
 * the Codex it depends on, @openai/codex 0.166, in `codex app-server`).
 */
const ACP_ADAPTERS: Partial<Record<AgentCli, string>> = { codex: 'codex-acp' };

/**
 * The path of an agent CLI (`acp`: the command that speaks ACP for it, its adapter if it
 * has one). Without it the test is skipped with the reason when run by hand, and fails
 * under CI, where `.ci/run` installs it.
 */
export function agentCli(context: TestContext, cli: AgentCli, options: { acp?: boolean } = {}): string {
  const name = (options.acp ? ACP_ADAPTERS[cli] : undefined) ?? cli;
  const file = path.join(BIN, name);
  if (!existsSync(file)) {
    const reason = `${name} is not installed in test/agent-clis (.ci/run installs it: npm ci --prefix test/agent-clis)`;
    if (process.env.CI) throw new Error(reason);
    context.skip(reason);
  }
  return file;
}

/** A TOML inline table of strings. */
function inlineTable(values: Record<string, string>): string {
  return `{ ${Object.entries(values)
    .map(([name, value]) => `${JSON.stringify(name)} = ${JSON.stringify(value)}`)
    .join(', ')} }`;
}

/**
 * The agent-pool.toml of a project whose agent is `cli`, pointed at a fake model API at
 * `apiUrl` only through the profile's env and files in its own HOME (so no test reads or
 * writes a user's real config), with TMPDIR of its own. A run keeps this environment for its
 * follow-ups, which is what lets them resume.
 */
export function agentCliConfig(
  cli: AgentCli,
  command: string,
  apiUrl: string,
  options: {
    retries?: number;
    idleTimeoutSeconds?: number;
    /** Run it over the Agent Client Protocol (kind "acp"), with this permission mode and keep_open_seconds. */
    acp?: { permissionMode?: string; keepOpenSeconds?: number };
  } = {},
): string {
  const home = tempDir(`${cli}-home-`);
  const tmp = path.join(home, 'tmp');
  mkdirSync(tmp);
  const env: Record<string, string> = { HOME: home, TMPDIR: tmp, XDG_CONFIG_HOME: path.join(home, '.config') };
  let args: string[] = [];
  switch (cli) {
    case 'codex': {
      const codexHome = path.join(home, '.codex');
      mkdirSync(codexHome);
      const retries = options.retries ?? 0;
      writeFileSync(
        path.join(codexHome, 'config.toml'),
        [
          'model = "gpt-5.5"',
          'model_provider = "fake"',
          '[model_providers.fake]',
          'name = "fake"',
          `base_url = "${apiUrl}/v1"`,
          'env_key = "AGENT_POOL_TEST_OPENAI_KEY"',
          'wire_api = "responses"',
          `request_max_retries = ${retries}`,
          `stream_max_retries = ${retries}`,
        ].join('\n'),
      );
      Object.assign(env, { CODEX_HOME: codexHome, AGENT_POOL_TEST_OPENAI_KEY: 'sk-agent-pool-test' });
      break;
    }
    case 'gemini':
      mkdirSync(path.join(home, '.gemini'));
      writeFileSync(
        path.join(home, '.gemini', 'settings.json'),
        JSON.stringify({
          security: { auth: { selectedType: 'gemini-api-key' } },
          general: { disableAutoUpdate: true, disableUpdateNag: true },
          privacy: { usageStatisticsEnabled: false },
          telemetry: { enabled: false },
        }),
      );
      Object.assign(env, { GEMINI_API_KEY: 'agent-pool-test-key', GOOGLE_GEMINI_BASE_URL: apiUrl });
      // Gemini CLI needs a model on every call.
      args = ['-m', 'gemini-2.5-pro'];
      break;
    case 'opencode': {
      const config = path.join(home, 'opencode.json');
      writeFileSync(
        config,
        JSON.stringify({
          $schema: 'https://opencode.ai/config.json',
          provider: {
            fake: {
              npm: '@ai-sdk/openai-compatible',
              name: 'Fake',
              options: { baseURL: `${apiUrl}/v1`, apiKey: 'sk-agent-pool-test' },
              models: { 'fake-model': { name: 'Fake Model' } },
            },
          },
          model: 'fake/fake-model',
        }),
      );
      Object.assign(env, {
        OPENCODE_CONFIG: config,
        // opencode installs plugins with npm at start-up: offline, it skips them and makes no registry traffic.
        npm_config_offline: 'true',
        OPENCODE_DISABLE_DEFAULT_PLUGINS: '1',
        OPENCODE_DISABLE_MODELS_FETCH: '1',
        OPENCODE_DISABLE_AUTOUPDATE: '1',
        OPENCODE_DISABLE_LSP_DOWNLOAD: '1',
        OPENCODE_DISABLE_SHARE: '1',
      });
      args = ['-m', 'fake/fake-model'];
      break;
    }
  }
  const acp = options.acp;
  if (acp) {
    if (cli === 'codex') {
      // codex-acp takes no arguments; its Codex reads CODEX_HOME as above. agent-pool sets
      // its session mode for the permission mode (read-only for "default": Codex's sandbox
      // then asks the client before a command leaves it).
      args = [];
    } else {
      // `opencode acp` takes its model from its configuration, not from a flag.
      args = cli === 'gemini' ? ['--acp', ...args] : ['acp'];
    }
  }
  return [
    '[agent]',
    `kind = "${acp ? 'acp' : cli}"`,
    `command = ${JSON.stringify(command)}`,
    `args = ${JSON.stringify(args)}`,
    ...(acp?.permissionMode ? [`permission_mode = "${acp.permissionMode}"`] : []),
    ...(acp?.keepOpenSeconds ? [`keep_open_seconds = ${acp.keepOpenSeconds}`] : []),
    `env = ${inlineTable(env)}`,
    `idle_timeout_seconds = ${options.idleTimeoutSeconds ?? 120}`,
    '[pool]',
    // codex-acp exits 2 s after the end of its input (the timer that would SIGTERM its
    // app-server keeps it alive): it gets the default grace, not to be ended by SIGTERM.
    `stop_grace_seconds = ${acp && cli === 'codex' ? 5 : 2}`,
  ].join('\n');
}
