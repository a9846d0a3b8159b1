// Unmodified GraphQL clients against a served gateway: Apollo Client's HttpLink
// and BatchHttpLink, and graphql-request.
//
//   node clients.mjs http://127.0.0.1:PORT/graphql HEADERS_JSON QUERY VARIABLES_JSON
//
// Prints one JSON object: {httpLink, batchHttpLink: [first, second], graphqlRequest},
// each the `data` that client returned for QUERY with VARIABLES_JSON.
import { ApolloClient, HttpLink, InMemoryCache, gql } from '@apollo/client';
import { BatchHttpLink } from '@apollo/client/link/batch-http';
import { GraphQLClient } from 'graphql-request';

const [url, headersJson, query, variablesJson] = process.argv.slice(2);
const headers = JSON.parse(headersJson);
const variables = JSON.parse(variablesJson);
const document = gql(query);

const apollo = (link) => new ApolloClient({ link, cache: new InMemoryCache() });
const ask = (client) =>
  client.query({ query: document, variables, fetchPolicy: 'no-cache' }).then(({ data }) => data);

const httpLink = await ask(apollo(new HttpLink({ uri: url, headers })));
// Two queries in the same tick: BatchHttpLink sends them as one JSON array.
const batching = apollo(new BatchHttpLink({ uri: url, headers, batchMax: 10, batchInterval: 20 }));
const batchHttpLink = await Promise.all([ask(batching), ask(batching)]);
const graphqlRequest = await new GraphQLClient(url, { headers }).request(query, variables);

console.log(JSON.stringify({ httpLink, batchHttpLink, graphqlRequest }));
