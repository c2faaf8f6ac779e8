import ChatClient
import Foundation

// The terminal client of demo user B (bob@demo.chat); see ChatCommandLine.
exit(ChatCommandLine(demo: .b, program: "chat-cli-b").run(Array(CommandLine.arguments.dropFirst())))
