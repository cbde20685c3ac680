/**
 * Fixed values for the synthetic chat data: realistic pools, and the awkward values that a
 * spreadsheet-safe export must survive. Every list here is placed deterministically by
 * `seed-data.ts`, so small seeds contain all of them.
 */

/** Message kinds of the `messages.type` column. */
export type MessageType = 'text' | 'audio' | 'image' | 'file' | 'video' | 'sticker' | 'location';

/** Chat providers written to `chats.provider`. */
export const PROVIDERS = ['whatsapp', 'facebook', 'instagram', 'telegram', 'web'] as const;

/** A value of {@link PROVIDERS}. */
export type Provider = (typeof PROVIDERS)[number];

/** Merchant time zones, assigned round-robin: merchant 1 of an empty database is in Bogotá. */
export const TIMEZONES = [
  'America/Bogota',
  'America/Mexico_City',
  'America/Sao_Paulo',
  'Europe/Madrid',
  'Asia/Kolkata',
  'Asia/Tokyo',
  'UTC',
  'America/New_York',
] as const;

/**
 * Merchant names, assigned round-robin (with a ` #n` suffix once they repeat). Commas, quotes,
 * accents, non-Latin scripts and a slash, because names end up in CSV cells and perhaps file names.
 */
export const MERCHANT_NAMES = [
  'Café Ñandú, S.A.S.',
  'Panadería "La Espiga" Ltda.',
  'Müller & Söhne, GmbH',
  'Livraria São João, Ltda.',
  'Ferretería El Tornillo / Sucursal Norte',
  '東京ラーメン株式会社',
  'मुंबई मसाले, Pvt. Ltd.',
  'Crème Brûlée Café, S.L.',
  "O'Reilly's Pub, Inc.",
  'Distribuidora Peña-Álvarez',
] as const;

/** Given names for generated people. */
export const FIRST_NAMES = [
  'María', 'José', 'Ana', 'Luis', 'Sofía', 'Andrés', 'Camila', 'Iván', 'Lucía', 'João',
  'Zoë', 'Renée', 'Björn', 'Aarav', 'Yuki', 'Chloé', 'Mateo', 'Valentina', 'Sebastián', 'Ñusta',
] as const;

/** Family names for generated people. */
export const LAST_NAMES = [
  'Pérez', 'Gómez', 'Rodríguez', 'Muñoz', 'Álvarez', 'Peña', 'Castaño', 'Gonçalves', 'Müller', 'Sánchez',
  "O'Connor", 'Núñez', 'Ibáñez', 'da Silva', 'Tanaka', 'Sharma', 'López', 'Hernández',
] as const;

/** Mail domains; `example.*` so no generated address can reach anyone. */
export const EMAIL_DOMAINS = ['example.com', 'example.co', 'example.org', 'correo.example'] as const;

/**
 * The first contacts of every merchant take their fields from these lists, position by position,
 * so every merchant has the awkward ones. Each list mixes plausible and hostile values.
 */
export const CONTACT_SHOWCASE = {
  name: [
    'María José Pérez',
    'Pérez, Juan Carlos',
    'José "Pepe" Martínez',
    'Zoë Ünal-Øster',
    '山田 太郎',
    "=cmd|' /C calc'!A0",
    '  Ana Gómez  ',
    '',
    null,
    '😀 Cliente Feliz',
    "Seán O'Brien",
    '@soporte',
    '+Carlos',
    '-Luisa-',
    'Línea1\nLínea2',
    'Renée Müller',
  ],
  identification: [
    '1020304050',
    '0012345678',
    '79.123.456',
    'CC 1.020.304.050',
    'AB123456',
    '123456789012345678901',
    null,
    '',
    '=1+1',
    '-123',
    '1E5',
    '2026-01-02',
    ' 52345678 ',
    '1,234',
    '+5730',
    '@id',
  ],
  email: [
    'maria.perez@example.com',
    null,
    'JOSE.MARTINEZ@EXAMPLE.COM',
    '',
    'zoë@ejemplo.example',
    '=HYPERLINK("mailto:x@example.com")',
    ' ana.gomez@example.com ',
    'a,b@example.com',
    null,
    'cliente+feliz@example.org',
    'sean.obrien@example.co',
    '@example.com',
    'carlos@example.com',
    '-luisa@example.com',
    'linea@example.com',
    'renee@example.com',
  ],
  phone: [
    '+57 300 123 4567',
    '(601) 555-0100',
    '3001234567',
    '=1+2',
    'call me',
    '',
    null,
    '+573001234567',
    '300-123-4567',
    '+1 (212) 555-0199 ext. 12',
    '-300 123 4567',
    '@home',
    '00573001234567',
    '601 555 0100\n',
    ' 3001234567 ',
    '+34 600 000 000',
  ],
} as const;

/** A contact's phone shapes drawn for generated contacts, `#` standing for a random digit. */
export const PHONE_SHAPES = [
  '+57 3## ### ####',
  '(60#) ###-####',
  '3#########',
  '+573#########',
  '3##-###-####',
  '+52 55 #### ####',
  '+55 11 9####-####',
  '+34 6## ### ###',
  '+1 (###) ###-####',
  '+91 9#### #####',
  '+81 90-####-####',
] as const;

/** Agents of every merchant start with these, so a NULL and an empty e-mail always exist. */
export const AGENT_SHOWCASE = [
  { name: 'Ana María Núñez', username: 'ana.nunez', email: 'ana.nunez@example.com' },
  { name: 'José "Pepe" Álvarez', username: 'pepe', email: null },
  { name: 'Søren Ærø, Jr.', username: '=soren', email: '' },
] as const;

/** Bot names, round-robin per merchant. */
export const BOT_NAMES = ['Asistente Virtual', 'Bot de Ventas, 24/7', 'Sofi 🤖', 'Concierge "Express"'] as const;

/** A bot slot template: what the bot answers for one intent; `text` NULL for slots that only hand over. */
export interface SlotTemplate {
  readonly name: string;
  readonly text: string | null;
}

/** Slot templates; slot `s` of bot `b` uses template `(s + 3b) mod length`, so bot 0's slot 2 has NULL text. */
export const SLOT_TEMPLATES: readonly SlotTemplate[] = [
  {
    name: 'bienvenida',
    text:
      '¡Hola! 👋 Soy el asistente virtual.\n\n¿En qué te puedo ayudar hoy?\n' +
      '1. Estado de pedido\n2. Horarios\n3. Hablar con un asesor',
  },
  {
    name: 'horarios',
    text:
      'Nuestro horario de atención es:\r\nLunes a viernes: 8:00 a. m. – 6:00 p. m.\r\n' +
      'Sábados: 9:00 a. m. – 1:00 p. m.\r\n\r\nDomingos y festivos: cerrado.',
  },
  { name: 'transferencia', text: null },
  { name: 'menú', text: 'Elige una opción:\n\n1️⃣ Pedidos\n2️⃣ Pagos\n3️⃣ Devoluciones' },
  {
    name: 'pagos',
    text:
      'Aceptamos tarjeta, PSE y efectivo.\n\nPara pagar en línea visita https://pagos.example.com/?ref=abc&x=1\n\n' +
      '"Importante": nunca compartas tu clave.',
  },
  { name: 'despedida', text: '¡Gracias por escribirnos! 😊\n\nSi necesitas algo más, responde a este mensaje.' },
  { name: '=fórmula', text: '=SUM(A1:A3)\n\n-- una respuesta que empieza como fórmula\t(con tabulador)' },
  { name: 'encuesta', text: 'Califica nuestra atención de 1 a 5:\n\n1 ⭐\n5 ⭐⭐⭐⭐⭐' },
];

/** One message's content: its type, and what its body and caption hold. */
export interface MessageContent {
  readonly type: MessageType;
  readonly body: string | null;
  readonly caption: string | null;
  /** Too big to sprinkle over random messages; appears only at its showcase position. */
  readonly rare?: boolean;
}

// Excel truncates a cell at 32,767 characters; this body is longer.
const LONG_BODY = 'Texto muy largo, con comas y "comillas". '.repeat(1000).trimEnd();

/**
 * The first messages of a seed take these contents in order (whatever their sender), and later
 * messages draw from them now and then, so every seed of at least this many messages has them all.
 */
export const MESSAGE_SHOWCASE: readonly MessageContent[] = [
  { type: 'text', body: 'Hola, buenos días. Quisiera saber el estado de mi pedido.', caption: null },
  { type: 'text', body: 'Línea uno\nLínea dos\nLínea tres', caption: null },
  { type: 'text', body: 'Primera línea\r\nSegunda línea\r\n', caption: null },
  { type: 'text', body: 'antes\rdespués', caption: null },
  { type: 'text', body: 'Me dijo "ya va en camino", pero no ha llegado', caption: null },
  { type: 'text', body: '"', caption: null },
  { type: 'text', body: '👍🏽 Perfecto, ¡gracias! 👨‍👩‍👧 🇨🇴', caption: null },
  { type: 'text', body: 'ご注文ありがとうございます。配送は明日です。', caption: null },
  { type: 'text', body: '订单号：１２３４５，谢谢', caption: null },
  { type: 'text', body: '=1+2', caption: null },
  { type: 'text', body: '=HYPERLINK("https://example.com/phish","Haz clic aquí")', caption: null },
  { type: 'text', body: '+57 300 123 4567', caption: null },
  { type: 'text', body: '-5 unidades, por favor', caption: null },
  { type: 'text', body: '@soporte ayuda por favor', caption: null },
  { type: 'text', body: '\tempieza con tabulador', caption: null },
  { type: 'text', body: '   espacios al inicio y al final   ', caption: null },
  { type: 'text', body: '', caption: null },
  { type: 'text', body: null, caption: null },
  { type: 'text', body: 'C:\\Users\\ana\\Documentos\\pedido.pdf', caption: null },
  { type: 'text', body: '\\N', caption: null },
  { type: 'text', body: 'NULL', caption: null },
  { type: 'text', body: '0012345', caption: null },
  { type: 'text', body: '12345678901234567890', caption: null },
  { type: 'text', body: '1E5', caption: null },
  { type: 'text', body: '3/4', caption: null },
  { type: 'text', body: '2026-09-15', caption: null },
  { type: 'text', body: 'TRUE', caption: null },
  { type: 'text', body: 'precio: 1.234,56 €; envío: 12,00 €', caption: null },
  { type: 'text', body: 'مرحبا، أريد المساعدة', caption: null },
  { type: 'text', body: '\uFEFFtexto que empieza con BOM', caption: null },
  { type: 'text', body: 'ancho\u200Bcero', caption: null },
  { type: 'text', body: 'separador\u2028de línea', caption: null },
  { type: 'text', body: 'tabulador\ten medio', caption: null },
  { type: 'text', body: '\r\nempieza con CRLF', caption: null },
  { type: 'text', body: 'tabulación\u000Bvertical y \u0001 control', caption: null },
  { type: 'text', body: "'=1+2 con apóstrofo", caption: null },
  { type: 'text', body: '<b>negrita</b> & <script>alert(1)</script>', caption: null },
  { type: 'text', body: LONG_BODY, caption: null, rare: true },
  { type: 'image', body: null, caption: '=IMPORTXML("https://example.com","//a")' },
  { type: 'video', body: null, caption: 'Video del daño\r\nsegunda línea, con "comillas"' },
  { type: 'file', body: null, caption: '' },
  { type: 'audio', body: null, caption: null },
  { type: 'sticker', body: null, caption: null },
  { type: 'location', body: 'Calle 100 # 15-20, Bogotá', caption: null },
  { type: 'image', body: null, caption: '+34 600 000 000' },
  { type: 'file', body: null, caption: 'factura_0012.pdf' },
  { type: 'image', body: null, caption: '  con espacios  ' },
  { type: 'video', body: null, caption: '@cliente -mira esto' },
];

/** The showcase entries that random messages may reuse (everything but the rare ones). */
export const TRICKY_CONTENTS: readonly MessageContent[] = MESSAGE_SHOWCASE.filter((content) => content.rare !== true);

/** Opening lines a contact writes. */
export const CONTACT_PHRASES = [
  'Hola, buenas tardes',
  'Quisiera saber el estado de mi pedido',
  '¿Tienen envío a Medellín?',
  'No me ha llegado el producto',
  '¿Cuál es el horario de atención?',
  'Necesito cambiar la dirección de entrega',
  'Gracias!',
  'ok',
  'Sí, ese es mi número',
  'El pago no aparece reflejado',
  'Olá, gostaria de falar com um atendente',
  'Hi, is anyone there?',
  '¿Me pueden llamar?',
  'Perfecto 👍',
  '¿Aceptan pagos con tarjeta?',
  'Ya hice la transferencia',
] as const;

/** Lines an agent writes. */
export const AGENT_PHRASES = [
  'Hola, con gusto te ayudo',
  '¿Me compartes tu número de pedido, por favor?',
  'Ya revisé: tu pedido sale mañana',
  'Lamentamos los inconvenientes',
  'Te envío el enlace de pago',
  '¿Hay algo más en lo que te pueda ayudar?',
  'Quedo atenta',
  'Listo, ya quedó actualizado',
  'Un momento, por favor',
  'Tu número de guía es el 7001234567',
] as const;

/** Lines a bot writes when it has no slot text. */
export const BOT_PHRASES = [
  'No entendí tu respuesta. Escribe 1, 2 o 3.',
  'Te comunico con un asesor, un momento por favor.',
  'Estoy consultando tu pedido…',
  'Gracias, tu solicitud quedó registrada.',
] as const;

/** File extensions of media URLs per type (text has none). */
export const MEDIA_EXTENSIONS: Readonly<Record<Exclude<MessageType, 'text' | 'location'>, readonly string[]>> = {
  audio: ['ogg', 'mp3', 'm4a'],
  image: ['jpg', 'png', 'webp'],
  file: ['pdf', 'xlsx', 'docx'],
  video: ['mp4', '3gp'],
  sticker: ['webp'],
};

/** Places for location messages. */
export const PLACES = [
  { name: 'Calle 93 # 11-27, Bogotá', lat: '4.676987', lon: '-74.048133' },
  { name: 'Av. Paulista, 1578 - São Paulo', lat: '-23.561414', lon: '-46.655881' },
  { name: 'Paseo de la Reforma 222, CDMX', lat: '19.429018', lon: '-99.163221' },
  { name: 'Gran Vía, 28, Madrid', lat: '40.420300', lon: '-3.701700' },
] as const;
