import ChatClient
import Foundation

// The terminal client of demo user A (alice@demo.chat); see ChatCommandLine.
exit(ChatCommandLine(demo: .a, program: "chat-cli-a").run(Array(CommandLine.arguments.dropFirst())))
