using System.Globalization;
using System.Text;

namespace HotpatchTools.Engine.Audit
{
    /// <summary>
    /// Flat JSON objects on one line (strings, numbers, booleans, null): all the audit log and the trust list need,
    /// without a JSON package in the module's dependencies.
    /// </summary>
    internal static class JsonLine
    {
        public static string Write(IEnumerable<KeyValuePair<string, object?>> fields)
        {
            var sb = new StringBuilder("{");
            bool first = true;
            foreach (var f in fields)
            {
                if (!first) sb.Append(',');
                first = false;
                Quote(sb, f.Key);
                sb.Append(':');
                switch (f.Value)
                {
                    case null: sb.Append("null"); break;
                    case bool b: sb.Append(b ? "true" : "false"); break;
                    case int i: sb.Append(i.ToString(CultureInfo.InvariantCulture)); break;
                    case long l: sb.Append(l.ToString(CultureInfo.InvariantCulture)); break;
                    case double d: sb.Append(d.ToString("R", CultureInfo.InvariantCulture)); break;
                    default: Quote(sb, Convert.ToString(f.Value, CultureInfo.InvariantCulture) ?? ""); break;
                }
            }
            return sb.Append('}').ToString();
        }

        // Every control character is escaped, so a value can never break the one-line-per-record rule.
        private static void Quote(StringBuilder sb, string s)
        {
            sb.Append('"');
            foreach (char c in s)
            {
                switch (c)
                {
                    case '"': sb.Append("\\\""); break;
                    case '\\': sb.Append("\\\\"); break;
                    case '\n': sb.Append("\\n"); break;
                    case '\r': sb.Append("\\r"); break;
                    case '\t': sb.Append("\\t"); break;
                    default:
                        if (c < 0x20 || c == '\u2028' || c == '\u2029' || c == '\u0085') sb.Append("\\u").Append(((int)c).ToString("x4"));
                        else sb.Append(c);
                        break;
                }
            }
            sb.Append('"');
        }

        /// <summary>The fields of one flat JSON object (numbers as long or double), or null if the line is not one.</summary>
        public static Dictionary<string, object?>? Parse(string line)
        {
            int i = 0;
            try
            {
                var result = new Dictionary<string, object?>(StringComparer.Ordinal);
                Skip(line, ref i);
                if (Next(line, ref i) != '{') return null;
                Skip(line, ref i);
                if (Peek(line, i) == '}') { i++; return End(line, i) ? result : null; }
                while (true)
                {
                    Skip(line, ref i);
                    var key = ReadString(line, ref i);
                    Skip(line, ref i);
                    if (Next(line, ref i) != ':') return null;
                    Skip(line, ref i);
                    result[key] = ReadValue(line, ref i);
                    Skip(line, ref i);
                    char c = Next(line, ref i);
                    if (c == '}') return End(line, i) ? result : null;
                    if (c != ',') return null;
                }
            }
            catch (FormatException) { return null; }
        }

        private static bool End(string s, int i)
        {
            Skip(s, ref i);
            return i == s.Length;
        }

        private static char Peek(string s, int i) => i < s.Length ? s[i] : throw new FormatException("unexpected end");

        private static char Next(string s, ref int i) => i < s.Length ? s[i++] : throw new FormatException("unexpected end");

        private static void Skip(string s, ref int i)
        {
            while (i < s.Length && (s[i] == ' ' || s[i] == '\t' || s[i] == '\r' || s[i] == '\n')) i++;
        }

        private static object? ReadValue(string s, ref int i)
        {
            char c = Peek(s, i);
            if (c == '"') return ReadString(s, ref i);
            if (Literal(s, ref i, "null")) return null;
            if (Literal(s, ref i, "true")) return true;
            if (Literal(s, ref i, "false")) return false;
            int start = i;
            while (i < s.Length && "+-0123456789.eE".IndexOf(s[i]) >= 0) i++;
            var text = s.Substring(start, i - start);
            if (text.Length == 0) throw new FormatException("not a value");
            if (long.TryParse(text, NumberStyles.AllowLeadingSign, CultureInfo.InvariantCulture, out var l)) return l;
            return double.Parse(text, NumberStyles.Float, CultureInfo.InvariantCulture);
        }

        private static bool Literal(string s, ref int i, string word)
        {
            if (string.CompareOrdinal(s, i, word, 0, word.Length) != 0) return false;
            i += word.Length;
            return true;
        }

        private static string ReadString(string s, ref int i)
        {
            if (Next(s, ref i) != '"') throw new FormatException("expected a string");
            var sb = new StringBuilder();
            while (true)
            {
                char c = Next(s, ref i);
                if (c == '"') return sb.ToString();
                if (c < 0x20) throw new FormatException("raw control character");
                if (c != '\\') { sb.Append(c); continue; }
                char e = Next(s, ref i);
                switch (e)
                {
                    case '"': case '\\': case '/': sb.Append(e); break;
                    case 'n': sb.Append('\n'); break;
                    case 'r': sb.Append('\r'); break;
                    case 't': sb.Append('\t'); break;
                    case 'b': sb.Append('\b'); break;
                    case 'f': sb.Append('\f'); break;
                    case 'u':
                        if (i + 4 > s.Length) throw new FormatException("short \\u escape");
                        sb.Append((char)int.Parse(s.Substring(i, 4), NumberStyles.HexNumber, CultureInfo.InvariantCulture));
                        i += 4;
                        break;
                    default: throw new FormatException("bad escape");
                }
            }
        }
    }
}
