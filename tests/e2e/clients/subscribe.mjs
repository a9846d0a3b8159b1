// One unmodified GraphQL client, set up as its users set it up, subscribing once to a served
// gateway and left to do whatever it does by itself: retry, reconnect, or let go.
//
//   node subscribe.mjs CLIENT http://127.0.0.1:PORT/graphql HEADERS_JSON SUBSCRIPTION
//
// CLIENT is graphqlWs (graphql-ws over ws), apolloWsLink (Apollo Client's GraphQLWsLink),
// apolloHttpLink (Apollo Client's plain HttpLink: multipart) or graphqlSse (graphql-sse,
// distinct connections). Prints one JSON line per thing the client reports, as it reports it:
// {"data": ..., "errors": [{"code", "path"}]} for a result, {"error": message}, {"complete": true}.
// Nothing here closes the client: the process exits once the client holds nothing open and
// has nothing scheduled, so a client that means to retry keeps it running (and retries).
import { ApolloClient, HttpLink, InMemoryCache, gql } from '@apollo/client';
import { GraphQLWsLink } from '@apollo/client/link/subscriptions';
import { createClient as createSseClient } from 'graphql-sse';
import { createClient as createWsClient } from 'graphql-ws';
import WebSocket from 'ws';

const [name, url, headersJson, subscription] = process.argv.slice(2);
const headers = JSON.parse(headersJson);
const wsUrl = url.replace(/^http/, 'ws');
const say = (fields) => console.log(JSON.stringify(fields));
const described = (errors) =>
  errors.map((e) => ({ code: e.extensions?.code ?? null, path: e.path ?? null }));
// Apollo Client 4 hands GraphQL errors over as result.error (CombinedGraphQLErrors, with
// .errors); graphql-ws and graphql-sse as result.errors, as the server sent them.
const sink = {
  next: (result) => {
    const errors = result.errors ?? result.error?.errors;
    if (errors) say({ data: result.data ?? null, errors: described(errors) });
    else if (result.error) say({ error: String(result.error.message ?? result.error) });
    else say({ data: result.data });
  },
  error: (error) => say({ error: String(error?.message ?? error) }),
  complete: () => say({ complete: true }),
};

const wsClient = () => createWsClient({ url: wsUrl, webSocketImpl: WebSocket, connectionParams: headers });
const apollo = (link) => new ApolloClient({ link, cache: new InMemoryCache() });
const clients = {
  graphqlWs: () => wsClient().subscribe({ query: subscription }, sink),
  apolloWsLink: () =>
    apollo(new GraphQLWsLink(wsClient())).subscribe({ query: gql(subscription) }).subscribe(sink),
  apolloHttpLink: () =>
    apollo(new HttpLink({ uri: url, headers })).subscribe({ query: gql(subscription) }).subscribe(sink),
  graphqlSse: () => createSseClient({ url, headers }).subscribe({ query: subscription }, sink),
};
if (!(name in clients)) {
  console.error(`unknown client ${name}; one of ${Object.keys(clients).join(', ')}`);
  process.exit(2);
}
clients[name]();
