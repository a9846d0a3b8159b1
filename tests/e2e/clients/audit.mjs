// graphql-http's own audits of the GraphQL over HTTP spec against a served endpoint.
//
//   node audit.mjs http://127.0.0.1:PORT/graphql
//
// Prints one JSON array: {id, name, status, reason} per audit; status is "ok",
// "warn" or "error", as graphql-http reports it.
import { auditServer } from 'graphql-http';

const results = await auditServer({ url: process.argv[2] });
console.log(
  JSON.stringify(
    results.map(({ id, name, status, reason }) => ({ id, name, status, reason: reason ?? null })),
  ),
);
