// The floor of any read that goes to the database: a bare Fastify server (no plugins, hooks, auth or
// response schema) whose one route runs the same statement GET /v1/generations/:id runs and sends
// the row as it comes; and one that runs `SELECT 1`. Their rates against /health say how much of the
// gap is the statement and how much the round trip itself.
// Run by the read-path bench as a process of its own: PORT, HOST, DATABASE_APP_URL, FLOOR_USER_ID.
import Fastify from 'fastify';
import pg from 'pg';

const db = new pg.Pool({ connectionString: process.env.DATABASE_APP_URL, max: 16 });
const userId = process.env.FLOOR_USER_ID;
const app = Fastify();

app.get('/health', async () => ({ status: 'healthy' }));
app.get<{ Params: { id: string } }>('/floor/:id', async (req) => {
  const { rows } = await db.query({
    name: 'read-generation',
    text: 'SELECT * FROM read_generation($1, $2)',
    values: [userId, req.params.id],
  });
  return rows[0];
});
// The round trip alone: what any statement costs before it does anything.
app.get('/floor/select-1', async () => {
  const { rows } = await db.query({ name: 'select-1', text: 'SELECT 1 AS one' });
  return rows[0];
});

process.once('SIGTERM', () => void app.close().then(() => db.end()));
void app.listen({ port: Number(process.env.PORT), host: process.env.HOST });
