import { createHash } from 'node:crypto';
import type { IncomingMessage, ServerResponse } from 'node:http';

type GraphiQLAssets = typeof import('@graphql-yoga/render-graphiql/graphiql');

/** What GraphiQL is set up with (yoga's GraphiQL options that agent-pool uses). */
export interface GraphiQLPageOptions {
  title: string;
  /** Where operations go. */
  endpoint: string;
  /** How GraphiQL runs subscriptions. */
  subscriptionsProtocol: 'SSE' | 'WS' | 'GRAPHQL_SSE' | 'LEGACY_WS';
  /** The editor's text on a first visit (GraphiQL keeps a person's own text after that). */
  defaultQuery?: string;
}

/**
 * GraphiQL's first text: agent-pool's own operations, ready to run one after another
 * (a story started, its events watched, every story listed), instead of GraphiQL's generic
 * welcome text.
 */
export const GRAPHIQL_EXAMPLE = `# agent-pool: each operation below runs on its own. Put the cursor in one and press
# Ctrl-Enter (or the run button, then pick its name). Start one story, watch it, list all.

mutation StartStory {
  startAgent(storyId: "graphiql-1", title: "A first story", prompt: "Say hello") {
    storyId
    title
    status
    branch
  }
}

subscription WatchStory {
  agentEvents(storyId: "graphiql-1") {
    seq
    __typename
    ... on AgentOutputEvent { text }
    ... on AgentStatusEvent { status }
    ... on AgentErrorEvent { message }
  }
}

query Stories {
  agents {
    storyId
    title
    status
    costUsd
    branch
    runs { number status renderedPrompt }
  }
}
`;

/** Text placed inside a <script>, made unable to end it early. */
function scriptSafe(text: string): string {
  return text.replaceAll('<', '\\u003c');
}

function sha256(text: string): string {
  return `'sha256-${createHash('sha256').update(text, 'utf8').digest('base64')}'`;
}

/**
 * The page's own script: Monaco's workers from inline code, then GraphiQL with the token
 * taken from the page's address (`?token=`) and at once removed from it (kept in the tab's
 * sessionStorage for reloads, as the dashboard does), so that it stays out of the history,
 * bookmarks and screenshots. Every operation then carries `Authorization: Bearer <token>`.
 */
function pageScript(assets: GraphiQLAssets, options: GraphiQLPageOptions): string {
  const { editorWorkerService, graphqlWorker, js, jsonWorker } = assets;
  return `
      function prepareBlob(workerContent) {
        return URL.createObjectURL(new Blob([workerContent], { type: 'application/javascript' }));
      }
      const workers = {
        editorWorkerService: prepareBlob(${scriptSafe(JSON.stringify(editorWorkerService))}),
        json: prepareBlob(${scriptSafe(JSON.stringify(jsonWorker))}),
        graphql: prepareBlob(${scriptSafe(JSON.stringify(graphqlWorker))}),
      };
      self['MonacoEnvironment'] = {
        globalAPI: false,
        getWorkerUrl: function (moduleId, label) {
          return workers[label];
        },
      };
      ${js};
      const tokenKey = 'agent-pool.graphiql.token';
      const address = new URL(window.location.href);
      const fromAddress = address.searchParams.get('token');
      if (fromAddress) {
        sessionStorage.setItem(tokenKey, fromAddress);
        address.searchParams.delete('token');
        window.history.replaceState(window.history.state, '', address.pathname + address.search + address.hash);
      }
      const token = fromAddress || sessionStorage.getItem(tokenKey);
      const options = ${scriptSafe(JSON.stringify(options))};
      if (token) options.additionalHeaders = { ...options.additionalHeaders, Authorization: 'Bearer ' + token };
      YogaGraphiQL.renderYogaGraphiQL(window.document.querySelector('#root'), options);
    `;
}

interface RenderedPage {
  body: Buffer;
  headers: Record<string, string | number>;
}

/**
 * GraphiQL as one self-contained page: its code, CSS and Monaco's workers are inline
 * (from `@graphql-yoga/render-graphiql`), so it works with no internet and loads nothing
 * from another origin. It holds no data and the server never writes the token into it.
 *
 * The page is 9 MB: it is rendered once, when first asked for, and every answer sends
 * that same buffer. It goes out with the dashboard's protections: a content security
 * policy that allows only its own inline script (by hash) and its blob workers, talks
 * only to its own origin and forbids framing; no referrer; no sniffing.
 */
export class GraphiQLPage {
  #page: Promise<RenderedPage> | undefined;

  constructor(private readonly options: GraphiQLPageOptions) {}

  /** Whether a request is a browser's navigation to GraphiQL (as yoga decides it: a GET that accepts HTML). */
  static wanted(request: IncomingMessage): boolean {
    return request.method === 'GET' && (request.headers.accept ?? '').includes('text/html');
  }

  /** Sends the page. */
  async serve(response: ServerResponse): Promise<void> {
    this.#page ??= this.#render().catch((error: unknown) => {
      this.#page = undefined; // the next request tries again
      throw error;
    });
    const page = await this.#page;
    response.writeHead(200, page.headers).end(page.body);
  }

  async #render(): Promise<RenderedPage> {
    const assets = await import('@graphql-yoga/render-graphiql/graphiql');
    const script = pageScript(assets, this.options);
    const style = assets.css;
    const html = `<!doctype html>
<html lang="en">
  <head>
    <meta charset="utf-8" />
    <title>${this.options.title.replace(/[<&]/g, '')}</title>
    <link rel="icon" href="${assets.favicon}" />
    <style>${style}</style>
  </head>
  <body id="body" class="no-focus-outline">
    <noscript>You need to enable JavaScript to run GraphiQL.</noscript>
    <div id="root"></div>
    <script>${script}</script>
  </body>
</html>
`;
    const body = Buffer.from(html, 'utf8');
    const csp = [
      "default-src 'none'",
      `script-src ${sha256(script)}`,
      // Monaco sets styles from script at run time.
      "style-src 'self' 'unsafe-inline'",
      'worker-src blob:',
      "img-src 'self' data:",
      "font-src 'self' data:",
      "connect-src 'self'",
      "frame-ancestors 'none'",
      "base-uri 'none'",
      "form-action 'none'",
    ].join('; ');
    return {
      body,
      headers: {
        'content-type': 'text/html; charset=utf-8',
        'content-length': body.length,
        'cache-control': 'no-cache',
        'content-security-policy': csp,
        'referrer-policy': 'no-referrer',
        'x-content-type-options': 'nosniff',
        'x-frame-options': 'DENY',
      },
    };
  }
}
