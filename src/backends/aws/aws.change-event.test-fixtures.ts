/**
 * Secrets Manager events as EventBridge delivers them to an SQS target, shaped as AWS documents
 * them ("Match AWS Secrets Manager events with Amazon EventBridge"; CloudTrail record contents).
 * Shared by the unit tests and the SQS integration suite: moto does not emit these events, so the
 * suite sends them itself.
 */
export function cloudTrailEvent(
  eventName: string,
  options: { readonly region: string; readonly secretId: string; readonly arn?: string; readonly errorCode?: string; readonly account?: string },
): Record<string, unknown> {
  const account = options.account ?? '123456789012';
  const service = eventName === 'RotationSucceeded' || eventName === 'RotationFailed';
  return {
    version: '0',
    id: '6a7e8feb-b491-4cf7-a9f1-bf3703467718',
    'detail-type': service ? 'AWS Service Event via CloudTrail' : 'AWS API Call via CloudTrail',
    source: 'aws.secretsmanager',
    account,
    time: '2026-12-06T06:30:00Z',
    region: options.region,
    resources: [],
    detail: {
      eventVersion: '1.08',
      userIdentity: service
        ? { accountId: account, invokedBy: 'secretsmanager.amazonaws.com' }
        : { type: 'IAMUser', principalId: 'AIDAEXAMPLE', arn: `arn:aws:iam::${account}:user/rotator`, accountId: account, userName: 'rotator' },
      eventTime: '2026-12-06T06:30:00Z',
      eventSource: 'secretsmanager.amazonaws.com',
      eventName,
      awsRegion: options.region,
      sourceIPAddress: service ? 'secretsmanager.amazonaws.com' : '192.0.2.10',
      userAgent: service ? 'secretsmanager.amazonaws.com' : 'aws-cli/2.15.0',
      ...(options.errorCode === undefined ? {} : { errorCode: options.errorCode, errorMessage: 'denied' }),
      ...(service
        ? { requestParameters: null, responseElements: null, additionalEventData: { SecretId: options.arn ?? options.secretId } }
        : {
            // CloudTrail never records SecretString / SecretBinary.
            requestParameters: { secretId: options.secretId, clientRequestToken: 'EXAMPLE1-90ab-cdef-fedc-ba987SECRET1' },
            responseElements: options.arn === undefined || options.errorCode !== undefined ? null : { arn: options.arn },
          }),
      requestID: '2f2e2f1d-8d4a-4d3c-9b1a-0e5f6a7b8c9d',
      eventID: 'b1a2c3d4-e5f6-4a5b-8c9d-0e1f2a3b4c5d',
      readOnly: false,
      eventType: service ? 'AwsServiceEvent' : 'AwsApiCall',
      managementEvent: true,
      recipientAccountId: account,
      eventCategory: 'Management',
    },
  };
}
