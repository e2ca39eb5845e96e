import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { randomBytes } from 'node:crypto';
import { join } from 'node:path';
import { DescribeSecretCommand } from '@aws-sdk/client-secrets-manager';
import { CreateQueueCommand, DeleteQueueCommand, GetQueueAttributesCommand, SendMessageCommand, SQSClient } from '@aws-sdk/client-sqs';
import { cloudTrailEvent } from '../../../src/backends/aws/aws.change-event.test-fixtures.ts';
import { currentWorld, type MotoEndpoint } from '../../harness/world-state.ts';
import { motoAdmin } from '../backends/backends.support.ts';
import { eventually } from '../support/cluster.ts';
import { metricSum, readText, sleep, startDeliveryWorld, type DeliveryWorld } from './delivery-world.ts';
import { startRotationBackend, type RotationBackend } from './rotation-backends.ts';

/**
 * Event-driven rotation on AWS Secrets Manager (issue 17, ADR 0222): the controller long-polls an
 * SQS queue — moto's, through the same endpoint and credentials as the backend — for the
 * EventBridge events of Secrets Manager's CloudTrail records. Moto does not emit these events
 * (it has no CloudTrail → EventBridge → SQS path), so this suite writes the secret in moto and then
 * sends the event itself, shaped exactly as AWS documents it (src/backends/aws/aws.change-event.test-fixtures.ts).
 * Bindings poll once an hour: only the event path can explain a delivery within the suite's wait.
 */

const marker = (): string => `marker-${randomBytes(8).toString('hex')}`;

describe('event-driven rotation on AWS Secrets Manager (SQS of EventBridge events, moto)', () => {
  let backend: RotationBackend;
  let world: DeliveryWorld;
  let sqs: SQSClient;
  let queueUrl: string;

  const moto = (): MotoEndpoint => {
    const m = currentWorld().moto;
    if (m === undefined) throw new Error('the world has no moto');
    return m;
  };
  const detected = (source: 'poll' | 'event'): Promise<number> =>
    metricSum(world.registry, 'secretbinder_backend_changes_detected_total', { provider: 'awsSecretsManager', source });
  const counted = (name: string, labels: Record<string, string>): Promise<number> => metricSum(world.registry, name, { source: 'awsSqs', ...labels });
  const send = async (body: unknown): Promise<void> => {
    await sqs.send(new SendMessageCommand({ QueueUrl: queueUrl, MessageBody: typeof body === 'string' ? body : JSON.stringify(body) }));
  };

  beforeAll(async () => {
    backend = await startRotationBackend('moto');
    const m = moto();
    sqs = new SQSClient({ endpoint: m.endpoint, region: m.region, credentials: { accessKeyId: m.accessKeyId, secretAccessKey: m.secretAccessKey } });
    queueUrl = (await sqs.send(new CreateQueueCommand({ QueueName: `sb-changes-${randomBytes(4).toString('hex')}` }))).QueueUrl ?? '';
    world = await startDeliveryWorld({
      prefix: 'rot-sqs',
      nodes: 1,
      backend,
      // The SecretBackend the world declares is named `backend`; its keys read the queue too.
      controllerArgs: (ns) => ['--aws-sqs-queue-url', queueUrl, '--aws-sqs-backend', `SecretBackend/${ns}/backend`, '--aws-sqs-wait-seconds', '1'],
    });
  }, 120_000);

  afterAll(async () => {
    await world.close();
    await backend.close();
    await sqs.send(new DeleteQueueCommand({ QueueUrl: queueUrl })).catch(() => undefined);
    sqs.destroy();
  }, 120_000);

  it('delivers a PutSecretValue announced on the queue (refreshInterval 1h), read with the backend\'s credentials', async () => {
    const key = `sqs-${world.suffix}/db`;
    const before = marker();
    await backend.write(key, { password: before });
    await world.createBinding('sqs', { podSelector: { matchLabels: { binding: 'sqs' } }, refreshInterval: '1h', files: [{ path: 'password', key, property: 'password' }] });
    const files = await Promise.all([0, 1, 2].map(async (i) => join((await world.podWithVolume(`sqs-${String(i)}`, 'sqs', 0)).mount.targetPath, 'password')));
    for (const file of files) expect(await readText(file)).toBe(before);
    await eventually('the queue polled', async () => ((await metricSum(world.registry, 'secretbinder_change_source_up', { source: 'awsSqs' })) === 1 ? true : undefined), 30_000);

    const [eventBefore, pollBefore] = [await detected('event'), await detected('poll')];
    const after = marker();
    await backend.write(key, { password: after });
    const arn = (await motoAdmin(moto()).send(new DescribeSecretCommand({ SecretId: key }))).ARN ?? '';
    const sent = Date.now();
    await send(cloudTrailEvent('PutSecretValue', { region: moto().region, secretId: key, arn }));
    for (const file of files) await eventually('the event delivered', async () => ((await readText(file)) === after ? true : undefined), 60_000);
    process.stdout.write(`event-driven rotation (aws sqs, moto): event sent → 3 volumes updated in ${String(Date.now() - sent)} ms\n`);
    expect((await detected('event')) - eventBefore).toBe(1);
    expect((await detected('poll')) - pollBefore).toBe(0);
  }, 180_000);

  it.each([
    ['a body that is no event', 'malformed', (): unknown => 'not json'],
    ['an event of another service', 'malformed', () => ({ ...cloudTrailEvent('PutSecretValue', { region: moto().region, secretId: 'x' }), source: 'aws.ssm' })],
    ['a failed call', 'ignored', () => cloudTrailEvent('PutSecretValue', { region: moto().region, secretId: `sqs-${world.suffix}/db`, errorCode: 'AccessDeniedException' })],
    ['a read', 'ignored', () => cloudTrailEvent('GetSecretValue', { region: moto().region, secretId: `sqs-${world.suffix}/db` })],
    ['a change of a secret no binding uses', 'unbound', () => cloudTrailEvent('PutSecretValue', { region: moto().region, secretId: `sqs-${world.suffix}/nobody` })],
  ] as const)('%s: counted, deleted from the queue, nothing read', async (_kind, result, body) => {
    const metric = result === 'malformed' ? (['secretbinder_change_notices_rejected_total', { reason: 'malformed' }] as const) : (['secretbinder_change_notices_total', { result }] as const);
    const before = await counted(metric[0], metric[1]);
    const changesBefore = (await detected('event')) + (await detected('poll'));
    await send(body());
    await eventually(`${result} counted`, async () => ((await counted(metric[0], metric[1])) > before ? true : undefined), 30_000);
    await eventually('the queue drained', async () => {
      const attributes = (await sqs.send(new GetQueueAttributesCommand({ QueueUrl: queueUrl, AttributeNames: ['ApproximateNumberOfMessages', 'ApproximateNumberOfMessagesNotVisible'] }))).Attributes ?? {};
      return attributes.ApproximateNumberOfMessages === '0' && attributes.ApproximateNumberOfMessagesNotVisible === '0' ? true : undefined;
    }, 30_000);
    await sleep(500);
    expect((await detected('event')) + (await detected('poll'))).toBe(changesBefore);
    expect(world.managerExited()).toBe(false);
  }, 60_000);
});
