import Shared

extension RedisSettings {
    /// Store options from these settings.
    public var storeOptions: RedisEndpointStore.Options {
        var options = RedisEndpointStore.Options()
        if let streamMaxLength { options.streamMaxLength = streamMaxLength }
        return options
    }
}
