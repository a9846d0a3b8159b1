// Apollo Client's persisted-queries link, unmodified, over POST or GET.
//
//   node apq.mjs http://127.0.0.1:PORT/graphql HEADERS_JSON QUERY post|get
//
// Runs QUERY twice through createPersistedQueryLink + HttpLink and prints one
// JSON object: {data: [first, second], printed, sent: [{method, hash, query, status}]}:
// `printed` is the text the link hashes and sends, `sent` every HTTP request it
// made, in order.
import { createHash } from 'node:crypto';
import { ApolloClient, HttpLink, InMemoryCache, gql } from '@apollo/client';
import { createPersistedQueryLink } from '@apollo/client/link/persisted-queries';
import { print } from 'graphql';

const [url, headersJson, query, method] = process.argv.slice(2);
const sent = [];

async function recordingFetch(input, init = {}) {
  const target = new URL(typeof input === 'string' ? input : input.url);
  const verb = (init.method ?? 'GET').toUpperCase();
  const params =
    verb === 'GET'
      ? Object.fromEntries(target.searchParams)
      : JSON.parse(init.body ?? '{}');
  const extensions =
    typeof params.extensions === 'string' ? JSON.parse(params.extensions) : params.extensions;
  const response = await fetch(input, init);
  sent.push({
    method: verb,
    hash: extensions?.persistedQuery?.sha256Hash ?? null,
    query: typeof params.query === 'string',
    status: response.status,
  });
  return response;
}

const link = createPersistedQueryLink({
  sha256: (text) => createHash('sha256').update(text).digest('hex'),
  useGETForHashedQueries: method === 'get',
}).concat(new HttpLink({ uri: url, headers: JSON.parse(headersJson), fetch: recordingFetch }));
const client = new ApolloClient({ link, cache: new InMemoryCache() });
const ask = () => client.query({ query: gql(query), fetchPolicy: 'no-cache' }).then((r) => r.data);

const data = [await ask(), await ask()];
console.log(JSON.stringify({ data, printed: print(gql(query)), sent }));
