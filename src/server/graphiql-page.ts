import type { GraphiQLOptions } from 'graphql-yoga';

type GraphiQLAssets = typeof import('@graphql-yoga/render-graphiql/graphiql');
let assets: Promise<GraphiQLAssets> | undefined;

/** Text placed inside a <script>, made unable to end it early. */
function scriptSafe(text: string): string {
  return text.replaceAll('<', '\\u003c');
}

/**
 * GraphiQL as one self-contained page: its code, CSS and Monaco's workers are inline
 * (from `@graphql-yoga/render-graphiql`), so it works with no internet and loads nothing
 * from another origin. The page holds no data: it takes the token from its own URL
 * (`?token=`) and sends it as `Authorization: Bearer <token>` with every operation,
 * subscriptions (over SSE) included. The server never writes the token into the page.
 */
export async function renderGraphiQLPage(options: GraphiQLOptions): Promise<string> {
  // 9 MB of inline code: loaded when the page is first asked for, not at every start.
  assets ??= import('@graphql-yoga/render-graphiql/graphiql');
  const { css, editorWorkerService, favicon, graphqlWorker, js, jsonWorker } = await assets;
  return `<!doctype html>
<html lang="en">
  <head>
    <meta charset="utf-8" />
    <title>${options.title ?? 'GraphiQL'}</title>
    <link rel="icon" href="${favicon}" />
    <style>${css}</style>
  </head>
  <body id="body" class="no-focus-outline">
    <noscript>You need to enable JavaScript to run GraphiQL.</noscript>
    <div id="root"></div>
    <script>
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
      const token = new URLSearchParams(window.location.search).get('token');
      const options = ${scriptSafe(JSON.stringify(options))};
      if (token) options.additionalHeaders = { ...options.additionalHeaders, Authorization: 'Bearer ' + token };
      YogaGraphiQL.renderYogaGraphiQL(window.document.querySelector('#root'), options);
    </script>
  </body>
</html>
`;
}
