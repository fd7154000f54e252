import ArgumentParser
import WSTap

@main
struct WSTapCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "wstap",
        abstract: "Decode HTTP/1.1 Upgrade and WebSocket traffic from packet captures.",
        discussion: """
            Exit status: 0 success; 2 the input is unusable (missing, not a capture, bad filter); \
            3 the capture is damaged or cut off (everything before the damage is still decoded); \
            4 output could not be written; 5 'follow' found no such connection; \
            64 the command line is wrong.
            """,
        version: WSTapVersion.current,
        subcommands: [ReadCommand.self, SniffCommand.self, StatsCommand.self, FollowCommand.self, LintCommand.self, InterfacesCommand.self]
    )
}
