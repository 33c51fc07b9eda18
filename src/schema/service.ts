import type { ServiceInfo } from '../pool/story-services.js';
import { SERVICE_OUTPUT_LINES } from '../pool/story-services.js';
import { builder } from './builder.js';

/** The ServiceStatus enum. */
export const ServiceStatusEnum = builder.enumType('ServiceStatus', {
  description: 'Where a story\'s service is.',
  values: {
    STARTING: { description: 'Started: not yet on its ready line, or not yet accepting connections on its port.' },
    READY: { description: 'Running and ready: its ready line came, or its port accepts connections.' },
    STOPPED: { description: 'Not running: never started, or stopped (stopService, archiveStory, the server\'s stop).' },
    FAILED: { description: 'It exited on its own (its exit code in its output), or could not start (its port in use).' },
  } as const,
});

/** The Service type: one of a story's services. */
export const ServiceRef = builder.objectRef<ServiceInfo>('Service').implement({
  description: 'One of a story\'s services ([services.NAME] of agent-pool.toml): a dev server in the story\'s worktree, on a port of its own.',
  fields: (t) => ({
    name: t.exposeString('name', { description: 'Its name in agent-pool.toml.' }),
    status: t.field({ type: ServiceStatusEnum, description: 'Where it is.', resolve: (service) => service.status }),
    port: t.exposeInt('port', {
      description: 'Its port ({{port}}, PORT): the story\'s, the same every time while the story exists; 0 when it has none: an archived story gives its ports back (STOPPED), and a used-up [services] ports leaves it without (FAILED).',
    }),
    pid: t.int({ nullable: true, description: 'The pid of its shell while it runs.', resolve: (service) => service.pid ?? null }),
    output: t.stringList({
      description: `Its newest output lines, oldest first, colour codes removed (at most ${SERVICE_OUTPUT_LINES} are kept; apart from the story's events).`,
      args: { last: t.arg.int({ defaultValue: 100, description: `How many (0 to ${SERVICE_OUTPUT_LINES}; clamped).` }) },
      complexity: (args) => ({ field: 1, multiplier: Math.min(Math.max(args.last ?? 100, 1), SERVICE_OUTPUT_LINES) / 10 }),
      resolve: (service, args) => service.output(args.last ?? 100),
    }),
  }),
});
