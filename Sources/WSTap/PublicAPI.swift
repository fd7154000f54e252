// The library's public surface: the analyzer and its timeline (this module), and from the stages
// below only the value types that timeline events, options and packet sources carry. Parsers,
// decoders and their helpers stay inside their modules; a user who wants one imports it by name.

@_exported import struct WSTapCore.CaptureTimestamp
@_exported import enum WSTapCore.StreamDirection
@_exported import struct WSTapCore.DirectionPair
@_exported import enum WSTapCore.Severity

@_exported import protocol WSTapCapture.PacketSource
@_exported import enum WSTapCapture.PacketSourceRead
@_exported import struct WSTapCapture.CapturedPacket
@_exported import struct WSTapCapture.LinkType
@_exported import enum WSTapCapture.CaptureError
@_exported import class WSTapCapture.CaptureFileReader
@_exported import enum WSTapCapture.GzipFile
@_exported import class WSTapCapture.CaptureSetReader
@_exported import class WSTapCapture.CaptureFileWriter
@_exported import class WSTapCapture.LiveCapture
@_exported import struct WSTapCapture.LiveCaptureConfiguration
@_exported import struct WSTapCapture.CaptureDevice
@_exported import struct WSTapCapture.CaptureStatistics

@_exported import struct WSTapPackets.Endpoint
@_exported import enum WSTapPackets.IPAddress

@_exported import enum WSTapTCP.ConnectionEndReason
@_exported import struct WSTapTCP.ReassemblyLimits
@_exported import struct WSTapTCP.TCPStatistics

@_exported import struct WSTapHTTP.HTTPRequestHead
@_exported import struct WSTapHTTP.HTTPResponseHead
@_exported import struct WSTapHTTP.HTTPHeaders
@_exported import struct WSTapHTTP.HTTPHeader
@_exported import struct WSTapHTTP.HTTPExchange
@_exported import struct WSTapHTTP.HTTPBodyPreview

@_exported import struct WSTapWebSocket.FrameHeader
@_exported import struct WSTapWebSocket.WebSocketOpcode
@_exported import struct WSTapWebSocket.WebSocketMessage
@_exported import struct WSTapWebSocket.PayloadGap
@_exported import struct WSTapWebSocket.CloseFrameBody
@_exported import struct WSTapWebSocket.CloseCode
@_exported import struct WSTapWebSocket.WebSocketHandshake
@_exported import struct WSTapWebSocket.ExtensionOffer
@_exported import struct WSTapWebSocket.PerMessageDeflateParameters

@_exported import struct WSTapApplication.ApplicationMessage
@_exported import struct WSTapApplication.ApplicationField
@_exported import enum WSTapApplication.ApplicationValue
@_exported import enum WSTapApplication.ApplicationDetection

@_exported import class WSTapTLS.KeyLog
@_exported import enum WSTapTLS.KeyLogError
@_exported import struct WSTapTLS.TLSSession

/// The version of wstap: the CLI's `--version`, and the creator named in exports.
public enum WSTapVersion {
    public static let current = "0.1.0"
}
