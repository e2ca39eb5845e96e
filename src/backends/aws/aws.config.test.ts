import { describe, expect, it } from '@jest/globals';
import { InvalidConfigError } from '../backend.port.ts';
import { parseAwsConfig } from './aws.config.ts';

describe('parseAwsConfig', () => {
  it('reads static keys with the CRD defaults', () => {
    expect(parseAwsConfig({ region: 'eu-west-1', auth: { staticKeys: { secretRef: { name: 'aws' } } } })).toEqual({
      region: 'eu-west-1',
      endpoint: undefined,
      stsEndpoint: undefined,
      auth: { method: 'staticKeys', secretName: 'aws', accessKeyIdKey: 'accessKeyId', secretAccessKeyKey: 'secretAccessKey', sessionTokenKey: undefined },
    });
  });

  it('reads web identity (audience sts.amazonaws.com by default), endpoints and the default chain', () => {
    const config = parseAwsConfig({
      region: 'us-gov-west-1',
      endpoint: 'https://vpce-123.secretsmanager.us-gov-west-1.vpce.amazonaws.com',
      stsEndpoint: 'http://127.0.0.1:5000',
      auth: { webIdentity: { roleArn: 'arn:aws-us-gov:iam::123456789012:role/app', serviceAccountRef: { name: 'reader' } } },
    });
    expect(config.auth).toEqual({ method: 'webIdentity', roleArn: 'arn:aws-us-gov:iam::123456789012:role/app', serviceAccountName: 'reader', audience: 'sts.amazonaws.com' });
    expect(config.endpoint).toBe('https://vpce-123.secretsmanager.us-gov-west-1.vpce.amazonaws.com');
    expect(config.stsEndpoint).toBe('http://127.0.0.1:5000');
    expect(parseAwsConfig({ region: 'eu-west-1', endpoint: '', auth: { defaultChain: {} } })).toEqual({
      region: 'eu-west-1',
      endpoint: undefined,
      stsEndpoint: undefined,
      auth: { method: 'defaultChain' },
    });
  });

  it.each([
    [{ auth: { defaultChain: {} } }, /region/],
    [{ region: 'EU_WEST', auth: { defaultChain: {} } }, /region/],
    [{ region: 'eu-west-1', auth: {} }, /exactly one of webIdentity, staticKeys, defaultChain/],
    [{ region: 'eu-west-1', auth: { defaultChain: {}, staticKeys: { secretRef: { name: 'a' } } } }, /exactly one/],
    [{ region: 'eu-west-1', auth: { webIdentity: { roleArn: 'role/app', serviceAccountRef: { name: 'r' } } } }, /roleArn/],
    [{ region: 'eu-west-1', endpoint: 'not a url', auth: { defaultChain: {} } }, /endpoint/],
    [{ region: 'eu-west-1', auth: { defaultChain: { profile: 'x' } } }, /profile/],
  ])('refuses %j', (spec, message) => {
    expect(() => parseAwsConfig(spec)).toThrow(InvalidConfigError);
    expect(() => parseAwsConfig(spec)).toThrow(message);
  });
});
