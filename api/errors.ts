/** An error the API answers with: an HTTP status, a stable machine-readable code and a human detail. */
export class ApiError extends Error {
  constructor(
    readonly status: number,
    readonly code: string,
    detail: string,
    readonly extra: {
      headers?: Record<string, string>;
      errors?: { path: string; message: string }[];
      /** RFC 9457 extension members, e.g. `requiredRole`, or `limit` and `remaining` of a spend limit. */
      members?: Record<string, string | number | null>;
    } = {},
  ) {
    super(detail);
    this.name = 'ApiError';
  }
}

/** 503 `unavailable`: a dependency is down or slow; the client may send the same request again later. */
export const unavailable = (detail: string, retryAfterSeconds = 5) =>
  new ApiError(503, 'unavailable', detail, { headers: { 'retry-after': String(retryAfterSeconds) } });

export const TITLES: Record<number, string> = {
  400: 'Bad Request',
  401: 'Unauthorized',
  402: 'Payment Required',
  403: 'Forbidden',
  404: 'Not Found',
  405: 'Method Not Allowed',
  408: 'Request Timeout',
  409: 'Conflict',
  410: 'Gone',
  413: 'Payload Too Large',
  414: 'URI Too Long',
  415: 'Unsupported Media Type',
  422: 'Unprocessable Content',
  429: 'Too Many Requests',
  431: 'Request Header Fields Too Large',
  500: 'Internal Server Error',
  503: 'Service Unavailable',
};

export interface Problem {
  type: string;
  title: string;
  status: number;
  detail: string;
  code: string;
  requestId: string;
  errors?: { path: string; message: string }[];
  [member: string]: unknown;
}

/** RFC 9457 problem details, with Velro's `code` and `requestId`. */
export function problem(
  status: number,
  code: string,
  detail: string,
  requestId: string,
  errors?: Problem['errors'],
  members?: Record<string, string | number | null>,
): Problem {
  return {
    ...members,
    type: `urn:velro:error:${code}`,
    title: TITLES[status] ?? 'Error',
    status,
    detail,
    code,
    requestId,
    ...(errors ? { errors } : {}),
  };
}

/** 404 for a team the caller is not a member of (never reveal a team to outsiders). */
export const teamNotFound = () => new ApiError(404, 'not_found', 'Team not found.');

/** 403 naming the team role an action needs. */
export const needsRole = (role: string, action?: string) =>
  new ApiError(
    403,
    'forbidden',
    `${action ? `${action} needs` : 'This needs'} the team role ${role} or higher.`,
    {
      members: { requiredRole: role },
    },
  );

export const notFound = (what: string) => new ApiError(404, 'not_found', `${what} not found`);
