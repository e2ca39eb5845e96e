import { describe, expect, it } from '@jest/globals';
import { parseChangeEvent } from './aws.change-event.ts';
import { cloudTrailEvent } from './aws.change-event.test-fixtures.ts';

const arn = 'arn:aws:secretsmanager:eu-west-1:123456789012:secret:prod/db-a1B2c3';

describe('parseChangeEvent', () => {
  it.each(['PutSecretValue', 'UpdateSecret', 'RotateSecret', 'DeleteSecret', 'RestoreSecret', 'UpdateSecretVersionStage'])(
    '%s names the secret as called and by the name inside its ARN',
    (eventName) => {
      const meaning = parseChangeEvent(JSON.stringify(cloudTrailEvent(eventName, { region: 'eu-west-1', secretId: 'prod/db', arn })));
      expect(meaning).toEqual({ kind: 'change', region: 'eu-west-1', keys: ['prod/db', arn] });
    },
  );

  it('reads the secret of a rotation result from additionalEventData', () => {
    expect(parseChangeEvent(JSON.stringify(cloudTrailEvent('RotationSucceeded', { region: 'eu-west-1', secretId: arn, arn })))).toEqual({
      kind: 'change',
      region: 'eu-west-1',
      keys: [arn, 'prod/db'],
    });
  });

  it.each([
    ['a read', JSON.stringify(cloudTrailEvent('GetSecretValue', { region: 'eu-west-1', secretId: 'prod/db' }))],
    ['a tag', JSON.stringify(cloudTrailEvent('TagResource', { region: 'eu-west-1', secretId: 'prod/db' }))],
    ['a failed write', JSON.stringify(cloudTrailEvent('PutSecretValue', { region: 'eu-west-1', secretId: 'prod/db', errorCode: 'AccessDenied' }))],
  ])('ignores %s', (_what, body) => {
    expect(parseChangeEvent(body)).toEqual({ kind: 'ignored' });
  });

  it.each([
    ['not JSON', '<xml/>'],
    ['another service', JSON.stringify({ ...cloudTrailEvent('PutSecretValue', { region: 'eu-west-1', secretId: 'x' }), source: 'aws.ssm' })],
    ['no secret named', JSON.stringify(cloudTrailEvent('PutSecretValue', { region: 'eu-west-1', secretId: '' }))],
    ['an SNS envelope', JSON.stringify({ Type: 'Notification', Message: '{}' })],
  ])('calls %s malformed', (_what, body) => {
    expect(parseChangeEvent(body)).toEqual({ kind: 'malformed' });
  });
});
