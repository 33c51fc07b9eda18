import type { AgentProfile } from '../config/config.js';
import { renderTemplate } from '../config/placeholders.js';
import type { StoryWorktree } from '../worktree/worktrees.js';
import type { AgentAdapter } from './agent-adapter.js';
import { resolveCommand } from './command-path.js';

/** The terminal size an agent starts with. */
export const TERMINAL_SIZE = { cols: 200, rows: 50 } as const;

/** How to start a run's agent: the executable, its argv, and the prompt it works on. */
export interface LaunchPlan {
  file: string;
  args: string[];
  /** The prompt, rendered (the first turn's message on a control channel). */
  prompt: string;
}

/**
 * Plans the start of an agent in its worktree: the profile's command found on PATH (or in
 * agent-pool's own `node_modules/.bin`), its prompt and args rendered, its argv built by
 * the adapter. Pure: it starts nothing.
 * @returns the plan, or the reason it cannot start (the command is not found).
 */
export function planLaunch(options: {
  profile: AgentProfile;
  adapter: AgentAdapter;
  projectRoot: string;
  worktree: StoryWorktree;
  /** The prompt as given to startAgent, or undefined for the profile's own. */
  prompt: string | undefined;
  /** The agent session a follow-up run resumes. */
  resumeSessionId: string | undefined;
  /** The PATH the agent gets. */
  path: string | undefined;
  /** The ports of the story's services, for `{{port:NAME}}`. */
  ports?: Readonly<Record<string, number>>;
  /** Whether the agent gets agent-pool's MCP tools (its environment holds the endpoint and token). */
  mcp?: boolean;
}): LaunchPlan | { failure: string } {
  const { profile, adapter, worktree } = options;
  const values = {
    story_id: worktree.storyId,
    worktree_path: worktree.path,
    branch: worktree.branch,
    project_root: options.projectRoot,
    ...Object.fromEntries(Object.entries(options.ports ?? {}).map(([name, port]) => [`port:${name}`, String(port)])),
  };
  const file = resolveCommand(profile.command, { path: options.path, projectRoot: options.projectRoot });
  if (!file) {
    return {
      failure: `agent command '${profile.command}' not found on PATH or in agent-pool's node_modules/.bin: install it, or set command of the agent profile in agent-pool.toml`,
    };
  }
  const prompt = options.prompt ?? renderTemplate(profile.prompt, values);
  const args = adapter.args({
    prompt,
    extraArgs: profile.args.map((arg) => renderTemplate(arg, values)),
    resumeSessionId: options.resumeSessionId,
    permissionMode: profile.permission_mode,
    maxBudgetUsd: profile.max_budget_usd,
    maxTurns: profile.max_turns,
    mcp: options.mcp ?? false,
  });
  return { file, args, prompt };
}
