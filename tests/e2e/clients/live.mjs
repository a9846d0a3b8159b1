// Unmodified GraphQL clients subscribing to a served gateway, each as its users set it up:
// graphql-ws (over ws), Apollo Client's GraphQLWsLink and its plain HttpLink (multipart),
// graphql-sse (distinct connections); and urql asking a query (which must stay JSON).
//
//   node live.mjs http://127.0.0.1:PORT/graphql HEADERS_JSON SUBSCRIPTION QUERY
//
// Prints one JSON line per value a client receives, as it receives it:
// {"client": name, "data": data} (or {"client": name, "error": message}); runs until killed.
import { ApolloClient, HttpLink, InMemoryCache, gql } from '@apollo/client';
import { GraphQLWsLink } from '@apollo/client/link/subscriptions';
import { Client as UrqlClient, fetchExchange } from '@urql/core';
import { createClient as createSseClient } from 'graphql-sse';
import { createClient as createWsClient } from 'graphql-ws';
import WebSocket from 'ws';

const [url, headersJson, subscription, query] = process.argv.slice(2);
const headers = JSON.parse(headersJson);
const wsUrl = url.replace(/^http/, 'ws');
const say = (client, fields) => console.log(JSON.stringify({ client, ...fields }));
const sink = (client) => ({
  next: (result) => say(client, result.errors ? { errors: result.errors } : { data: result.data }),
  error: (error) => say(client, { error: String(error?.message ?? error) }),
  complete: () => say(client, { complete: true }),
});

// graphql-ws, the reference client: credentials in connection_init's payload.
const ws = createWsClient({ url: wsUrl, webSocketImpl: WebSocket, connectionParams: headers });
ws.subscribe({ query: subscription }, sink('graphqlWs'));

// Apollo Client over GraphQLWsLink (graphql-ws underneath).
const apolloWs = new ApolloClient({
  link: new GraphQLWsLink(
    createWsClient({ url: wsUrl, webSocketImpl: WebSocket, connectionParams: headers }),
  ),
  cache: new InMemoryCache(),
});
apolloWs.subscribe({ query: gql(subscription) }).subscribe(sink('apolloWsLink'));

// Apollo Client over its plain HttpLink: multipart subscriptions, no configuration.
const apolloHttp = new ApolloClient({ link: new HttpLink({ uri: url, headers }), cache: new InMemoryCache() });
apolloHttp.subscribe({ query: gql(subscription) }).subscribe(sink('apolloHttpLink'));

// graphql-sse in distinct connections mode (its default).
const sse = createSseClient({ url, headers });
sse.subscribe({ query: subscription }, sink('graphqlSse'));

// urql's query: JSON, though its Accept also names event streams.
const urql = new UrqlClient({ url, exchanges: [fetchExchange], fetchOptions: { headers } });
const answered = await urql.query(query, {}, { requestPolicy: 'network-only' }).toPromise();
say('urqlQuery', answered.error ? { error: answered.error.message } : { data: answered.data });
