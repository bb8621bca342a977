/// The answer to a batch of writes.
public struct WriteResult: Hashable, Sendable {
    /// One outcome per write, in order.
    public var outcomes: [WriteOutcome]
    /// The source's data generation after the writes.
    public var generation: String
    /// True when this batch created the generation: the source's data was empty (first write ever, or
    /// Redis lost its data). A writer that had published before must then republish everything.
    public var createdGeneration: Bool

    public init(outcomes: [WriteOutcome], generation: String, createdGeneration: Bool) {
        self.outcomes = outcomes
        self.generation = generation
        self.createdGeneration = createdGeneration
    }
}
