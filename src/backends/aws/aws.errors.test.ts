import { describe, expect, it } from '@jest/globals';
import {
  DecryptionFailure,
  InternalServiceError,
  InvalidParameterException,
  InvalidRequestException,
  ResourceNotFoundException,
} from '@aws-sdk/client-secrets-manager';
import { AuthFailedError, InvalidConfigError, NotFoundError, ThrottledError, UnavailableError } from '../backend.port.ts';
import { mapAwsError } from './aws.errors.ts';

const meta = { $metadata: { httpStatusCode: 400 } };

/** A service error as the SDK builds it for exceptions it has no class for. */
function serviceError(name: string, message: string, status: number, headers: Record<string, string> = {}): Error {
  return Object.assign(new Error(message), { name, $metadata: { httpStatusCode: status }, $response: { statusCode: status, headers } });
}

describe('mapAwsError', () => {
  it('maps the SDK’s modelled exceptions', () => {
    expect(mapAwsError(new ResourceNotFoundException({ message: "Secrets Manager can't find the specified secret.", ...meta }), { operation: 'GetSecretValue', key: 'app/db' })).toBeInstanceOf(NotFoundError);
    expect(mapAwsError(new DecryptionFailure({ message: 'KMS denied', ...meta }), { operation: 'GetSecretValue' })).toBeInstanceOf(AuthFailedError);
    expect(mapAwsError(new InvalidParameterException({ message: 'bad VersionStage', ...meta }), { operation: 'GetSecretValue' })).toBeInstanceOf(InvalidConfigError);
    expect(mapAwsError(new InternalServiceError({ message: 'oops', $metadata: { httpStatusCode: 500 } }), { operation: 'GetSecretValue' })).toBeInstanceOf(UnavailableError);
    const deleted = new InvalidRequestException({ message: "You can't perform this operation on the secret because it was marked for deletion.", ...meta });
    expect(mapAwsError(deleted, { operation: 'GetSecretValue' })).toBeInstanceOf(NotFoundError);
    expect(mapAwsError(new InvalidRequestException({ message: 'other', ...meta }), { operation: 'GetSecretValue' })).toBeInstanceOf(InvalidConfigError);
  });

  it.each([
    ['UnrecognizedClientException', 400],
    ['InvalidSignatureException', 400],
    ['ExpiredTokenException', 400],
    ['AccessDeniedException', 400],
    ['InvalidIdentityToken', 400],
    ['CredentialsProviderError', 0],
  ])('%s is AuthFailed', (name, status) => {
    expect(mapAwsError(serviceError(name, 'no', status), { operation: 'BatchGetSecretValue' })).toBeInstanceOf(AuthFailedError);
  });

  it('maps throttling, with the Retry-After hint when the answer had one', () => {
    const throttled = mapAwsError(serviceError('ThrottlingException', 'Rate exceeded', 400, { 'retry-after': '4' }), { operation: 'DescribeSecret' });
    expect(throttled).toBeInstanceOf(ThrottledError);
    expect((throttled as ThrottledError).retryAfterMs).toBe(4000);
    const plain429 = mapAwsError(serviceError('Unknown', 'Too Many Requests', 429), { operation: 'DescribeSecret' });
    expect(plain429).toBeInstanceOf(ThrottledError);
    expect((plain429 as ThrottledError).retryAfterMs).toBeUndefined();
  });

  it('keeps only the first paragraph: AWS appends the canonical request (headers) to signature errors', () => {
    const message =
      'The request signature we calculated does not match the signature you provided.\n\nThe Canonical String for this request should have been\n' +
      "'POST\n/\n\nhost:secretsmanager.us-east-1.amazonaws.com\nx-amz-security-token:IQoJb3JpZ2luX2VjEJr//////////wEaCXVzLWVhc3QtMSJH\n'";
    const mapped = mapAwsError(serviceError('SignatureDoesNotMatch', message, 403), { operation: 'GetSecretValue', credentials: ['wJalrXUtnFEMI/K7MDENG'] });
    expect(mapped).toBeInstanceOf(AuthFailedError);
    expect(mapped.message).toContain('signature we calculated does not match');
    expect(mapped.message).not.toContain('x-amz-security-token');
    expect(mapped.message).not.toContain('IQoJb3JpZ2luX2Vj');
  });

  it('removes the credentials in use from any message', () => {
    const mapped = mapAwsError(serviceError('AccessDeniedException', 'denied for key wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY', 400), {
      operation: 'GetSecretValue',
      credentials: ['wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY'],
    });
    expect(mapped.message).not.toContain('wJalrXUtnFEMI');
  });

  it('says so when the error body could not be read (a proxy page, an emulator)', () => {
    const error = Object.assign(new SyntaxError('Unexpected token \'<\', "<?xml vers"... is not valid JSON\n  Deserialization error: to see the raw response, inspect the hidden field {error}.$response'), {
      $metadata: { httpStatusCode: 403 },
    });
    const mapped = mapAwsError(error, { operation: 'DescribeSecret' });
    expect(mapped).toBeInstanceOf(AuthFailedError);
    expect(mapped.message).toBe('AWS DescribeSecret denied (HTTP 403, error response not readable)');
  });

  it('reports network failures and aborts as Unavailable', () => {
    expect(mapAwsError(Object.assign(new Error('connect ECONNREFUSED'), { code: 'ECONNREFUSED' }), { operation: 'GetSecretValue' })).toBeInstanceOf(UnavailableError);
    const controller = new AbortController();
    controller.abort();
    const aborted = mapAwsError(Object.assign(new Error('Request aborted'), { name: 'AbortError' }), { operation: 'GetSecretValue', signal: controller.signal });
    expect(aborted).toBeInstanceOf(UnavailableError);
    expect(aborted.message).toBe('AWS GetSecretValue was aborted');
  });
});
