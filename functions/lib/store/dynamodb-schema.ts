// The shape of the one DynamoDB table both DynamoDB stores use, as plain
// values: the stack creates the table from it and the stores write to it,
// so neither can drift from the other. No SDK here, so infra can import it.
//
// Items (every key a string):
//
//   pk                        sk                   what
//   BLOB#REGISTRY#DIGEST      REPOSITORY           a blob location (`at`)
//   RUN#RUN_ID                PLAN#PAGE#CHUNK      a plan page, gzipped JSON
//   RUN#RUN_ID                RESULT#PACKAGE#DIGEST  an image's result
//   RUN#RUN_ID                INFO#CHUNK           run metadata, gzipped
//   INVENTORY#TARGET          PACKAGE#NAME#CHUNK   a package's tags
//
// Run items carry `expiresAt` and go away with the table's TTL; blob
// locations and inventories stay.

export const tableSchema = {
  /** The partition key: a string. */
  partitionKey: 'pk',
  /** The sort key: a string. */
  sortKey: 'sk',
  /** Both keys are strings ('S' in the DynamoDB API and in CDK). */
  keyType: 'S',
  /** Epoch seconds after which DynamoDB may delete the item. */
  timeToLiveAttribute: 'expiresAt',
  /** The stores make no use of provisioned capacity. */
  billingMode: 'PAY_PER_REQUEST',
} as const;

export type TableSchema = typeof tableSchema;
