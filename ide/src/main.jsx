// GraphiQL 5 with the Explorer plugin, as the gateway serves it under /graphql/ide/;
// it runs queries over HTTP and subscriptions over the WebSocket.
//
// The page carries no script of its own (its Content-Security-Policy forbids
// inline script): it holds a JSON data block, #graphiql-config, with the
// endpoint, the example query and the headers to prefill, and loads this file.
import { GraphiQL } from 'graphiql';
import { explorerPlugin } from '@graphiql/plugin-explorer';
import { createGraphiQLFetcher } from '@graphiql/toolkit';
import { createRoot } from 'react-dom/client';
import 'graphiql/style.css';
import '@graphiql/plugin-explorer/style.css';
import './page.css';

// Monaco's workers are files of their own beside this one (see build.mjs), so
// the page needs neither a CDN nor blob: URLs.
const workers = new URL('./workers/', import.meta.url);
globalThis.MonacoEnvironment = {
  getWorker(_workerId, label) {
    const name = label === 'json' || label === 'graphql' ? label : 'editor';
    return new Worker(new URL(`${name}.worker.js`, workers), { name: label });
  },
};

const element = document.getElementById('graphiql');
const config = JSON.parse(document.getElementById('graphiql-config').textContent);
// Subscriptions go over the same path's WebSocket (graphql-transport-ws, graphql-ws underneath);
// the toolkit opens one per subscription, the headers tab as connection_init's payload.
const subscriptionUrl = new URL(config.url, window.location.href);
subscriptionUrl.protocol = subscriptionUrl.protocol === 'https:' ? 'wss:' : 'ws:';
const fetcher = createGraphiQLFetcher({ url: config.url, subscriptionUrl: subscriptionUrl.href });

createRoot(element).render(
  <GraphiQL
    fetcher={fetcher}
    plugins={[explorerPlugin()]}
    defaultQuery={config.query}
    initialQuery={config.query}
    defaultHeaders={config.headers}
    initialHeaders={config.headers}
    shouldPersistHeaders={false}
  />,
);
