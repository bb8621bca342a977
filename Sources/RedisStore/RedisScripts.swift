import Crypto
import Shared

/// WARNING - STABLE API: the scripts that enforce the write rules of docs/redis-schema.md inside Redis,
/// atomically. Errors they raise start with `LEGATION_` and map to `StoreError` codes.
enum RedisScripts {
    /// KEYS lease, epoch, removed · ARGV holder, ttl ms → {1, epoch} acquired or renewed; {0, holder} held.
    static let acquireLease = RedisScript(
        """
        local current = redis.call('GET', KEYS[1])
        if current then
          local holder, epoch = string.match(current, '^(.*) (%d+)$')
          if holder == ARGV[1] then
            redis.call('PEXPIRE', KEYS[1], ARGV[2])
            return {1, epoch}
          end
          return {0, holder or current}
        end
        local now = redis.call('TIME')
        local floor = tonumber(now[1]) * 1000 + math.floor(tonumber(now[2]) / 1000)
        local epoch = tonumber(redis.call('GET', KEYS[2]) or '0')
        if epoch < floor then epoch = floor else epoch = epoch + 1 end
        redis.call('SET', KEYS[2], string.format('%d', epoch))
        redis.call('SET', KEYS[1], ARGV[1] .. ' ' .. string.format('%d', epoch), 'PX', ARGV[2])
        redis.call('DEL', KEYS[3])
        return {1, string.format('%d', epoch)}
        """)

    /// KEYS lease · ARGV "holder epoch", ttl ms → 1 renewed, 0 lost.
    static let renewLease = RedisScript(
        """
        if redis.call('GET', KEYS[1]) == ARGV[1] then
          redis.call('PEXPIRE', KEYS[1], ARGV[2])
          return 1
        end
        return 0
        """)

    /// KEYS lease · ARGV "holder epoch" → 1 released, 0 not held.
    static let releaseLease = RedisScript(
        """
        if redis.call('GET', KEYS[1]) == ARGV[1] then
          redis.call('DEL', KEYS[1])
          return 1
        end
        return 0
        """)

    /// The fencing check every write script starts with.
    private static let fence = """
        local current = redis.call('GET', KEYS[1])
        if not current then
          return redis.error_reply('LEGATION_NO_LEASE no epoch for this source: lease never taken or data lost')
        end
        if current ~= ARGV[1] then
          return redis.error_reply('LEGATION_STALE_EPOCH writer epoch ' .. ARGV[1] .. ' is not the current epoch ' .. current)
        end
        """

    /// KEYS epoch, meta, services, hashes, changes
    /// ARGV epoch, stream max length, candidate generation, then per write: op (put/del), field, hash, record
    /// → {generation, created (0/1), revision or 0 per write}
    static let write = RedisScript(
        fence + "\n" + """
            local created = redis.call('HSETNX', KEYS[2], 'generation', ARGV[3])
            local generation = redis.call('HGET', KEYS[2], 'generation')
            local results = {generation, created}
            for i = 4, #ARGV, 4 do
              local op, field, hash, record = ARGV[i], ARGV[i + 1], ARGV[i + 2], ARGV[i + 3]
              local changed
              if op == 'put' then
                changed = redis.call('HGET', KEYS[4], field) ~= hash
                if changed then
                  redis.call('HSET', KEYS[3], field, record)
                  redis.call('HSET', KEYS[4], field, hash)
                end
              else
                changed = redis.call('HDEL', KEYS[3], field) == 1
                redis.call('HDEL', KEYS[4], field)
              end
              if changed then
                local revision = redis.call('HINCRBY', KEYS[2], 'revision', 1)
                if op == 'put' then
                  redis.call('XADD', KEYS[5], 'MAXLEN', '~', ARGV[2], '*',
                    'rev', revision, 'gen', generation, 'op', 'put', 'svc', field, 'rec', record)
                else
                  redis.call('XADD', KEYS[5], 'MAXLEN', '~', ARGV[2], '*',
                    'rev', revision, 'gen', generation, 'op', 'del', 'svc', field)
                end
                results[#results + 1] = revision
              else
                results[#results + 1] = 0
              end
            end
            return results
            """)

    /// KEYS epoch, meta, services, canary, changes · ARGV epoch, generation, canary record, max length
    /// → revision. Marking again what the same writer marked for the same generation (a reconcile that
    /// found nothing to write) changes nothing: `meta.synced` holds "<epoch> <generation>" of the mark.
    static let markSynced = RedisScript(
        fence + "\n" + """
            local marker = ARGV[1] .. ' ' .. ARGV[2]
            if redis.call('HGET', KEYS[2], 'synced') == marker and redis.call('EXISTS', KEYS[4]) == 1 then
              return tonumber(redis.call('HGET', KEYS[2], 'revision') or '0')
            end
            local generation = redis.call('HGET', KEYS[2], 'generation')
            if not generation then
              if redis.call('HLEN', KEYS[3]) > 0 then
                return redis.error_reply('LEGATION_GENERATION_CHANGED the source has records but no generation')
              end
              redis.call('HSET', KEYS[2], 'generation', ARGV[2])
              generation = ARGV[2]
            end
            if generation ~= ARGV[2] then
              return redis.error_reply('LEGATION_GENERATION_CHANGED stored generation is ' .. generation)
            end
            redis.call('SET', KEYS[4], ARGV[3])
            redis.call('HSET', KEYS[2], 'synced', marker)
            local revision = redis.call('HINCRBY', KEYS[2], 'revision', 1)
            redis.call('XADD', KEYS[5], 'MAXLEN', '~', ARGV[4], '*', 'rev', revision, 'gen', generation, 'op', 'synced')
            return revision
            """)

    /// KEYS epoch, heartbeat · ARGV epoch, record, ttl ms → 1
    static let heartbeat = RedisScript(
        fence + "\n" + """
            redis.call('SET', KEYS[2], ARGV[2], 'PX', ARGV[3])
            return 1
            """)

    /// KEYS meta, services, changes, canary, heartbeat, removed → {generation, revision, last entry id,
    /// {field, record, ...}, canary, heartbeat, heartbeat ttl ms, removed}. Reads only: runs on replicas.
    static let snapshot = RedisScript(
        """
        #!lua flags=no-writes
        local generation = redis.call('HGET', KEYS[1], 'generation')
        local revision = redis.call('HGET', KEYS[1], 'revision')
        local last = redis.call('XREVRANGE', KEYS[3], '+', '-', 'COUNT', 1)
        local cursor = '0-0'
        if #last > 0 then cursor = last[1][1] end
        return {generation, revision or '0', cursor, redis.call('HGETALL', KEYS[2]),
          redis.call('GET', KEYS[4]), redis.call('GET', KEYS[5]), redis.call('PTTL', KEYS[5]),
          redis.call('EXISTS', KEYS[6])}
        """)

    /// KEYS meta, services, hashes, changes, canary, heartbeat, lease, removed, epoch · ARGV max length
    /// → 1. The epoch moves on, so the source's last writer is fenced off.
    static let removeSource = RedisScript(
        """
        if redis.call('EXISTS', KEYS[9]) == 1 then redis.call('INCR', KEYS[9]) end
        redis.call('DEL', KEYS[2], KEYS[3], KEYS[5], KEYS[6], KEYS[7])
        local generation = redis.call('HGET', KEYS[1], 'generation') or ''
        local revision = redis.call('HINCRBY', KEYS[1], 'revision', 1)
        redis.call('XADD', KEYS[4], 'MAXLEN', '~', ARGV[1], '*', 'rev', revision, 'gen', generation, 'op', 'removed')
        local now = redis.call('TIME')
        redis.call('SET', KEYS[8], now[1] .. string.format('%03d', math.floor(tonumber(now[2]) / 1000)))
        redis.call('DEL', KEYS[1])
        return 1
        """)
}
